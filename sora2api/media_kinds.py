"""What the media cache keeps: the extensions it writes and serves, their types, and the check
that a file's first bytes are what its name says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from .errors import BadRequestError, UpstreamError
from .sniff import MIME, media_type
from .upstream.errors import Kind, classify

MB: Final = 1024 * 1024
CHUNK_SIZE: Final = 256 * 1024
# The only extensions the cache writes or serves, and the type each is served as. The type comes
# from here, never from the upstream, so a file can't be served as HTML.
CONTENT_TYPES: Final = MappingProxyType(
    {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "gif": "image/gif",
        "mp4": "video/mp4",
        "webm": "video/webm",
        "mov": "video/quicktime",
    }
)


@dataclass(frozen=True, slots=True)
class CachedFile:
    name: str
    path: Path
    size: int
    content_type: str


def _check_ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext not in CONTENT_TYPES:
        raise BadRequestError(
            f"Unsupported media type .{ext}: the cache keeps only {', '.join(CONTENT_TYPES)}"
        )
    return ext


class MediaFailure(UpstreamError):
    """A media download that failed upstream, classified like every other upstream answer."""

    def __init__(self, message: str, kind: Kind) -> None:
        super().__init__(message, code=kind.value)
        self.kind = kind


_SNIFF_BYTES: Final = 12  # enough for every signature sniff.media_type knows
_VIDEO: Final = frozenset({"mp4", "mov"})
_IMAGE: Final = frozenset({"png", "jpeg", "webp", "gif"})
# What the bytes may be for each extension a caller asks for. Images are one family because a
# thumbnail's extension is guessed from its link; the file is then named by what it really is.
_FAMILY: Final = MappingProxyType(
    {
        "mp4": _VIDEO,
        "mov": _VIDEO,
        "webm": frozenset({"webm"}),
        **dict.fromkeys(("png", "jpg", "jpeg", "webp", "gif"), _IMAGE),
    }
)
_WHAT: Final = MappingProxyType(
    {
        "mp4": "an MP4 video",
        "mov": "an MP4 video",
        "webm": "a WebM video",
        **dict.fromkeys(("png", "jpg", "jpeg", "webp", "gif"), "an image (PNG, JPEG, WebP or GIF)"),
    }
)


def _expect(head: bytes, ext: str, shown: str, content_type: str) -> str:
    """The extension the first bytes prove, or a classified failure quoting what came instead."""
    kind = media_type(head)
    if kind in _FAMILY[ext]:
        return ext if MIME[kind] == CONTENT_TYPES[ext] else ("jpg" if kind == "jpeg" else kind)
    if not head:
        raise MediaFailure(
            f"Caching failed: {shown} answered HTTP 200 with an empty body instead of {_WHAT[ext]}",
            Kind.MALFORMED,
        )
    failure = classify(200, head[:2048], content_type, "media")
    text = failure.message
    if not text.isprintable():
        text = f"the body starts with {head[:16].hex(' ')}"
    got = f"{kind.upper()} data" if kind else "something else"
    raise MediaFailure(
        f"Caching failed: {shown} answered HTTP 200 with {got} instead of {_WHAT[ext]}: {text}",
        failure.kind,
    )
