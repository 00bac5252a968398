"""Real media bytes: tiny PNGs, structurally valid MP4s of any size, upload sniffing."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_MP4_BYTES = 4096
_PATTERN_BYTES = 64 * 1024


def colour_for(key: str) -> tuple[int, int, int]:
    """A stable colour per id, so different generations give visibly different images."""
    digest = hashlib.sha256(key.encode()).digest()
    return digest[0], digest[1], digest[2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A valid size×size RGB PNG of one solid colour."""
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then the pixels
    idat = zlib.compress(row * size)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _mvhd(duration_ms: int) -> bytes:
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    payload = (
        struct.pack(">IIIII", 0, 0, 0, 1000, duration_ms)  # version/flags, times, timescale
        + struct.pack(">IH", 0x10000, 0x100)  # rate 1.0, volume 1.0
        + b"\x00" * 10
        + matrix
        + b"\x00" * 24
        + struct.pack(">I", 2)  # next track id
    )
    return _box(b"mvhd", payload)


@dataclass(frozen=True, slots=True)
class Mp4:
    """An ISO-BMFF file (`ftyp`, `moov`, `free`, `mdat`) produced on demand, never held whole."""

    size: int
    seed: str
    duration_ms: int = 10_000

    def header(self) -> bytes:
        """Every box up to and including the `mdat` header."""
        ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
        moov = _box(b"moov", _mvhd(self.duration_ms))
        # The seed in a `free` box makes the watermarked and clean variants differ from byte 0.
        free = _box(b"free", hashlib.sha256(self.seed.encode()).digest())
        head = ftyp + moov + free
        mdat_size = max(self.size, len(head) + 8) - len(head)
        return head + struct.pack(">I", mdat_size) + b"mdat"

    @property
    def total(self) -> int:
        """The real file length (a request below the minimum is rounded up)."""
        return max(self.size, len(self.header()))

    def iter_range(self, start: int, end: int, chunk: int) -> Iterator[bytes]:
        """Yield bytes [start, end) in pieces of at most `chunk` bytes."""
        head = self.header()
        pattern = random.Random(self.seed).randbytes(_PATTERN_BYTES)
        pos = start
        while pos < end:
            if pos < len(head):
                piece = head[pos : min(end, len(head), pos + chunk)]
            else:
                offset = (pos - len(head)) % _PATTERN_BYTES
                n = min(chunk, end - pos, _PATTERN_BYTES - offset)
                piece = pattern[offset : offset + n]
            pos += len(piece)
            yield piece

    def to_bytes(self) -> bytes:
        """The whole file; only for small files."""
        return b"".join(self.iter_range(0, self.total, _PATTERN_BYTES))


def mp4_bytes(size: int = DEFAULT_MP4_BYTES, seed: str = "sim") -> bytes:
    """A small complete MP4, handy for tests that upload a cameo video."""
    return Mp4(size=size, seed=seed).to_bytes()


def sniff_image(data: bytes) -> str | None:
    """The image MIME type the magic bytes say, or None."""
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def sniff_video(data: bytes) -> str | None:
    """The video MIME type the magic bytes say, or None."""
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


class RangeError(ValueError):
    """The Range header cannot be satisfied."""


def parse_range(header: str, total: int) -> tuple[int, int] | None:
    """Turn a single `bytes=` range into [start, end); None means the whole file."""
    if not header.startswith("bytes="):
        return None
    spec = header[6:].strip()
    if "," in spec:
        return None  # several ranges: serve the whole file, as many CDNs do
    first, sep, last = spec.partition("-")
    if not sep:
        raise RangeError(header)
    try:
        if not first:
            start, end = max(0, total - int(last)), total
        else:
            start = int(first)
            end = min(total, int(last) + 1) if last else total
    except ValueError as exc:
        raise RangeError(header) from exc
    if start >= total or start >= end:
        raise RangeError(header)
    return start, end
