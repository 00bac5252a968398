"""What only a Sora token can lack: the Sora-2 video model (an account without the invite)."""

from __future__ import annotations

from ...store import TokenRow


def sora_problem(row: TokenRow, kind: str) -> str | None:
    """Why this Sora token cannot take a `kind` job beyond the shared checks, or None."""
    if kind == "video" and not row.sora2_supported:
        return "without Sora-2"
    return None
