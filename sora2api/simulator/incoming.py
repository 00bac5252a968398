"""Parse a request body once (JSON or multipart) so both the journal and the handler can use it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

# Text parts up to this size are kept as text in the journal; larger ones only by size.
TEXT_PART_LIMIT = 4096
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Part:
    """One multipart part; `data` is cut at the upload limit (`truncated` then says so)."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes
    size: int
    truncated: bool

    def text(self) -> str | None:
        """The part as text when it is small and decodes as UTF-8, else None."""
        if self.size > TEXT_PART_LIMIT or self.truncated:
            return None
        try:
            return self.data.decode()
        except UnicodeDecodeError:
            return None

    def describe(self) -> dict[str, Any]:
        """The journal's view of the part."""
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            # Lets a test check that the bytes it sent are the bytes that arrived.
            "sha256": hashlib.sha256(self.data).hexdigest() if self.filename is not None else None,
            "text": self.text() if self.filename is None else None,
        }


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a request carried: raw bytes, parsed JSON (None if absent or broken), parts."""

    raw: bytes = b""
    json: Any = None
    json_error: bool = False
    parts: dict[str, Part] = field(default_factory=dict)
    multipart: bool = False

    def part(self, name: str) -> Part | None:
        """The named multipart part, if sent."""
        return self.parts.get(name)


async def read_incoming(request: web.Request, *, part_limit: int) -> Incoming:
    """Read and parse the body; never raises on malformed input (handlers judge it)."""
    if request.content_type.startswith("multipart/"):
        return Incoming(parts=await _read_parts(request, part_limit), multipart=True)
    if not request.body_exists:
        return Incoming()
    raw = await request.read()
    if not raw.strip():
        return Incoming(raw=raw)
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        return Incoming(raw=raw, json={k: str(v) for k, v in form.items()})
    try:
        return Incoming(raw=raw, json=orjson.loads(raw))
    except orjson.JSONDecodeError:
        return Incoming(raw=raw, json_error=True)


async def _read_parts(request: web.Request, part_limit: int) -> dict[str, Part]:
    parts: dict[str, Part] = {}
    try:
        reader = await request.multipart()
        while (item := await reader.next()) is not None:
            if not isinstance(item, BodyPartReader) or item.name is None:
                continue
            parts[item.name] = await _read_part(item, part_limit)
    except ValueError:
        # A broken multipart body keeps whatever parsed so far; the handler answers 400.
        pass
    return parts


async def _read_part(item: BodyPartReader, limit: int) -> Part:
    kept = bytearray()
    size = 0
    # Read in chunks and keep at most `limit` bytes: an oversized upload must not sit in memory.
    while chunk := await item.read_chunk(_CHUNK):
        size += len(chunk)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    content_type = item.headers.get("Content-Type")
    return Part(
        name=item.name or "",
        filename=item.filename,
        content_type=content_type,
        data=bytes(kept),
        size=size,
        truncated=size > len(kept),
    )
