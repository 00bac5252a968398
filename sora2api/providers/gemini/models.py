"""Gemini Omni's models and the mapping of a Submission onto an Interactions create body."""

from __future__ import annotations

import base64
from typing import Any

from ...upstream.errors import Kind, UpstreamFailure
from ..base import ModelSpec, Submission
from .errors import WHO

PROVIDER = "gemini"
OMNI = "gemini-omni-1.1-flash"
# Upstream models this provider drives: video through the Interactions API.
VIDEO_MODELS = (OMNI,)
SECONDS = tuple(range(3, 11))  # Omni takes 3-10 s (fractional too); our front sends integers
DEFAULT_SECONDS = 10
# "WxH" -> (aspect_ratio, resolution). Only the two aspect ratios Omni renders exist.
SIZES: dict[str, tuple[str, str]] = {
    "1280x720": ("16:9", "720p"),
    "720x1280": ("9:16", "720p"),
    "1920x1080": ("16:9", "1080p"),
    "1080x1920": ("9:16", "1080p"),
    "640x360": ("16:9", "360p"),
    "360x640": ("9:16", "360p"),
    "3840x2160": ("16:9", "4k"),
    "2160x3840": ("9:16", "4k"),
}
LANDSCAPE = tuple(s for s, (ratio, _) in SIZES.items() if ratio == "16:9")
PORTRAIT = tuple(s for s, (ratio, _) in SIZES.items() if ratio == "9:16")
DEFAULT_SIZE = "1280x720"  # 16:9 at 720p, Omni's own defaults
# The image types google-genai's ImageContent names.
IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/gif",
        "image/bmp",
        "image/tiff",
    }
)
# Chat clients that cannot send seconds or size pick them by name, in the seed's naming.
ALIAS_SECONDS = (4, 6, 8, 10)


def _spec(id_: str, seconds: tuple[int, ...], sizes: tuple[str, ...], what: str) -> ModelSpec:
    return ModelSpec(
        id=id_,
        provider=PROVIDER,
        upstream=OMNI,
        kind="video",
        seconds=seconds,
        default_seconds=DEFAULT_SECONDS if len(seconds) > 1 else seconds[0],
        sizes=sizes,
        default_size=sizes[0],
        image_input=True,
        image_roles=("first_frame",),
        description=what,
        seed_range=(0, (1 << 31) - 1),
    )


def specs_for(upstream: str) -> list[ModelSpec]:
    """The public ids of one upstream model: itself, then its chat-friendly aliases."""
    if upstream != OMNI:
        return []
    sizes_all = (DEFAULT_SIZE, *(s for s in SIZES if s != DEFAULT_SIZE))
    out = [_spec(OMNI, SECONDS, sizes_all, "Gemini Omni video, 3-10 s, 16:9 or 9:16")]
    for shape, sizes in (("landscape", LANDSCAPE), ("portrait", PORTRAIT)):
        for s in ALIAS_SECONDS:
            out.append(_spec(f"gemini-omni-{shape}-{s}s", (s,), sizes, f"Gemini Omni {s}s {shape}"))
    return out


def _refuse(message: str) -> UpstreamFailure:
    # Refused here, before anything is sent: every Interactions create is billed, even a bad one.
    return UpstreamFailure(
        Kind.BAD_REQUEST, message, status=400, endpoint="validate", sent=False, upstream=WHO
    )


def response_format(sub: Submission) -> dict[str, str]:
    """Omni's response_format for a submission, or a BAD_REQUEST naming what the model allows."""
    spec = sub.model
    seconds = sub.seconds if sub.seconds is not None else spec.default_seconds or DEFAULT_SECONDS
    allowed_seconds = spec.seconds or SECONDS
    if isinstance(seconds, bool) or seconds not in allowed_seconds:
        listed = ", ".join(str(s) for s in allowed_seconds)
        raise _refuse(
            f"{spec.id} cannot make {seconds!r} s videos; seconds must be one of {listed}"
        )
    size = sub.size or spec.default_size or DEFAULT_SIZE
    allowed_sizes = spec.sizes or tuple(SIZES)
    if size not in allowed_sizes or size not in SIZES:
        listed = ", ".join(allowed_sizes)
        raise _refuse(f"{spec.id} cannot make size {size!r}; size must be one of {listed}")
    ratio, resolution = SIZES[size]
    return {
        "type": "video",
        "aspect_ratio": ratio,
        "resolution": resolution,
        "duration": str(seconds),
    }


def create_body(sub: Submission) -> dict[str, Any]:
    """The POST /v1/interactions body, validated in full before anything goes out."""
    if sub.model.provider != PROVIDER or sub.model.upstream not in VIDEO_MODELS:
        raise _refuse(f"{sub.model.id} is not a Gemini Omni video model")
    if not sub.prompt.strip():
        raise _refuse("a prompt is required")
    if sub.remix_of is not None:
        raise _refuse(f"{sub.model.id} cannot remix a video")
    if len(sub.images) > 1:
        raise _refuse(f"{sub.model.id} takes at most one image (the first frame)")
    body: dict[str, Any] = {
        "model": OMNI,
        "background": True,
        "response_format": response_format(sub),
    }
    seed = sub.options.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 31:
            raise _refuse(f"seed must be an integer from 0 to {(1 << 31) - 1}")
        body["generation_config"] = {"seed": seed}
    if not sub.images:
        return {**body, "input": sub.prompt}
    parts: list[dict[str, str]] = [{"type": "text", "text": sub.prompt}]
    for image in sub.images:
        if image.role != "first_frame":
            raise _refuse(f"{sub.model.id} takes an image only as the first frame")
        if image.content_type not in IMAGE_TYPES:
            listed = ", ".join(sorted(IMAGE_TYPES))
            raise _refuse(f"image type {image.content_type!r} is not one of {listed}")
        data = base64.b64encode(image.data).decode("ascii")
        parts.append({"type": "image", "data": data, "mime_type": image.content_type})
    # google-genai sends a list of content parts as one user_input step.
    body["input"] = [{"type": "user_input", "content": parts}]
    # Pinned rather than left to the model, which may also read an image as a style reference.
    config = body.setdefault("generation_config", {})
    config["video_config"] = {"task": "image_to_video"}
    return body
