"""Loose validation of create payloads, the way the real backend rejects them (400)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import invalid

VALID_N_FRAMES = frozenset({150, 300, 450, 600, 750})
ORIENTATIONS = frozenset({"portrait", "landscape", "square"})
SIZES = frozenset({"small", "large"})
_POST_ID_RE = re.compile(r"^s_[0-9a-f]{32}$")
_MAX_PROMPT = 10_000


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """A validated POST /video_gen body."""

    prompt: str
    width: int
    height: int
    n_variants: int
    media_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """A validated POST /nf/create or /nf/create/storyboard body."""

    prompt: str
    orientation: str
    size: str
    n_frames: int
    media_ids: tuple[str, ...]
    remix_target_id: str | None
    title: str | None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid()
    return body


def _prompt(body: dict[str, Any], *, allow_empty: bool) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or len(prompt) > _MAX_PROMPT:
        raise invalid(param="prompt")
    if not prompt.strip() and not allow_empty:
        raise invalid(param="prompt")
    return prompt


def _int(body: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    # bool is an int subclass; the backend would not take `true` as a size.
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise invalid(param=key)
    return value


def _items(body: dict[str, Any], id_keys: tuple[str, ...]) -> tuple[str, ...]:
    items = body.get("inpaint_items")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise invalid(param="inpaint_items")
    ids: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid(param="inpaint_items")
        for key in id_keys:
            if key in item:
                if not isinstance(item[key], str):
                    raise invalid(param="inpaint_items")
                ids.append(item[key])
    return tuple(ids)


def parse_image(body: Any) -> ImageRequest:
    """Validate an image task body: prompt, sizes, variants, reference images."""
    data = _object(body)
    if data.get("type", "image_gen") != "image_gen":
        raise invalid(param="type")
    media_ids = _items(data, ("upload_media_id", "upload_id"))
    return ImageRequest(
        prompt=_prompt(data, allow_empty=bool(media_ids)),
        width=_int(data, "width", 360, 64, 4096),
        height=_int(data, "height", 360, 64, 4096),
        n_variants=_int(data, "n_variants", 1, 1, 4),
        media_ids=media_ids,
    )


def parse_video(body: Any) -> VideoRequest:
    """Validate a video (or storyboard) body; unknown extra keys are fine."""
    data = _object(body)
    if data.get("kind", "video") != "video":
        raise invalid(param="kind")
    orientation = data.get("orientation") or "portrait"
    if orientation not in ORIENTATIONS:
        raise invalid(param="orientation")
    size = data.get("size") or "small"
    if size not in SIZES:
        raise invalid(param="size")
    n_frames = data.get("n_frames", 300)
    if n_frames is None:
        n_frames = 300
    if isinstance(n_frames, bool) or n_frames not in VALID_N_FRAMES:
        raise invalid(param="n_frames")
    remix = data.get("remix_target_id")
    if remix is not None and (not isinstance(remix, str) or not _POST_ID_RE.match(remix)):
        raise invalid(param="remix_target_id")
    title = data.get("title")
    media_ids = _items(data, ("upload_id", "upload_media_id"))
    return VideoRequest(
        prompt=_prompt(data, allow_empty=bool(remix or media_ids)),
        orientation=orientation,
        size=size,
        n_frames=int(n_frames),
        media_ids=media_ids,
        remix_target_id=remix,
        title=title if isinstance(title, str) else None,
    )
