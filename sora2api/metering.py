"""What a job measures for usage and the per-key caps: video seconds and images."""

from __future__ import annotations

from typing import Any

from .providers import DEFAULT_PROVIDER


def planned(described: dict[str, Any], kind: str) -> dict[str, Any]:
    """The usage columns of a new job from its stored request: its provider, and the seconds or
    images it will count for if it completes (failed and cancelled jobs count for nothing)."""
    seconds = described.get("seconds") if kind == "video" else None
    images = described.get("n") if kind == "image" else None
    return {
        "provider": described.get("provider") or DEFAULT_PROVIDER,
        "video_seconds": float(seconds) if isinstance(seconds, int | float) else 0.0,
        "images": (int(images) if isinstance(images, int) else 1) if kind == "image" else 0,
    }


def measured(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """Corrections from a completed job's result: the images it really returned. (A provider
    that reports its own usage writes the jobs.upstream_usage column before completing.)"""
    count = result.get("count")
    if kind == "image" and isinstance(count, int) and not isinstance(count, bool):
        return {"images": count}
    return {}
