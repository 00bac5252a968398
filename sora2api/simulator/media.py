"""Real media bytes: PNGs, playable H.264 MP4s (padded to any size), upload sniffing."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .h264 import Picture, Stream, coded_size, encode

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_MP4_BYTES = 4096
_PATTERN_BYTES = 64 * 1024
_FPS = 2  # enough for the progress bar to move; each frame costs only the blocks that changed
_FREE_LEN = 8 + 32  # the `free` box holding the seed's SHA-256
_LONG_SIDE = 160  # pixels: 160x90 or 90x160, small enough to make on the fly


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


def _full(kind: bytes, version_flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags) + payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_FTYP = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")


def _mvhd(duration_ms: int) -> bytes:
    payload = (
        struct.pack(">IIII", 0, 0, 1000, duration_ms)  # times, timescale (ms), duration
        + struct.pack(">IH", 0x10000, 0x100)  # rate 1.0, volume 1.0
        + b"\x00" * 10
        + _MATRIX
        + b"\x00" * 24
        + struct.pack(">I", 2)  # next track id
    )
    return _full(b"mvhd", 0, payload)


def _trak(clip: Clip, stream: Stream, deltas: list[int], offset: int) -> bytes:
    """The one video track: sample table over a single chunk that starts at `offset`."""
    w, h = clip.width, clip.height
    tkhd = _full(
        b"tkhd",
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, clip.duration_ms)
        + b"\x00" * 16  # reserved, layer, alternate group, volume 0 (video), reserved
        + _MATRIX
        + struct.pack(">II", w << 16, h << 16),
    )
    mdhd = _full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, 1000, clip.duration_ms, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, b"\x00" * 4 + b"vide" + b"\x00" * 12 + b"VideoHandler\x00")
    avcc = _box(
        b"avcC",
        bytes([1, stream.sps[1], stream.sps[2], stream.sps[3], 0xFF, 0xE1])
        + struct.pack(">H", len(stream.sps))
        + stream.sps
        + b"\x01"
        + struct.pack(">H", len(stream.pps))
        + stream.pps,
    )
    avc1 = _box(
        b"avc1",
        b"\x00" * 6
        + struct.pack(">H", 1)  # data_reference_index
        + b"\x00" * 16
        + struct.pack(">HHIIIH", w, h, 0x480000, 0x480000, 0, 1)  # size, 72 dpi, 1 frame/sample
        + b"\x00" * 32  # compressor name
        + struct.pack(">Hh", 0x18, -1)
        + avcc,
    )
    runs: list[tuple[int, int]] = []
    for delta in deltas:
        if runs and runs[-1][1] == delta:
            runs[-1] = (runs[-1][0] + 1, delta)
        else:
            runs.append((1, delta))
    count = len(stream.frames)
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, struct.pack(">I", 1) + avc1)
        + _full(
            b"stts",
            0,
            struct.pack(">I", len(runs)) + b"".join(struct.pack(">II", *r) for r in runs),
        )
        + _full(b"stss", 0, struct.pack(">II", 1, 1))  # only the first frame is a key frame
        + _full(b"stsc", 0, struct.pack(">IIII", 1, 1, count, 1))
        + _full(
            b"stsz",
            0,
            struct.pack(">II", 0, count)
            + b"".join(struct.pack(">I", 4 + len(f)) for f in stream.frames),
        )
        + _full(b"stco", 0, struct.pack(">II", 1, offset)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1) + _full(b"url ", 1, b"")))
    minf = _box(b"minf", _full(b"vmhd", 1, b"\x00" * 8) + dinf + stbl)
    return _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))


@dataclass(frozen=True, slots=True)
class Clip:
    """What a simulated video shows: its picture size, length and the key of its colours."""

    width: int
    height: int
    duration_ms: int
    key: str


@lru_cache(maxsize=64)
def _movie(clip: Clip) -> tuple[bytes, bytes]:
    """(`ftyp` and `moov`, the samples) of a clip; a `free` box and the `mdat` header go between."""
    step = 1000 // _FPS
    count = max(1, -(-clip.duration_ms // step))
    deltas = [step] * (count - 1) + [clip.duration_ms - step * (count - 1)]
    stream = encode(clip.width, clip.height, _pictures(clip, count))
    samples = b"".join(struct.pack(">I", len(f)) + f for f in stream.frames)
    mvhd = _mvhd(clip.duration_ms)
    moov_len = 8 + len(mvhd) + len(_trak(clip, stream, deltas, 0))
    # The moov comes first ("fast start"), so a browser can play while the rest arrives.
    offset = len(_FTYP) + moov_len + _FREE_LEN + 8
    return _FTYP + _box(b"moov", mvhd + _trak(clip, stream, deltas, offset)), samples


def clip_size(width: int, height: int) -> tuple[int, int]:
    """The small frame a simulated video of a promised width x height has (same orientation)."""
    if width <= 0 or height <= 0:
        width, height = 16, 9
    scale = _LONG_SIDE / max(width, height)
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


@dataclass(frozen=True, slots=True)
class Mp4:
    """A playable H.264 MP4 (`ftyp`, `moov`, `free`, `mdat`) of `duration_ms` in the orientation of
    width x height (0 x 0: landscape), padded to `size` bytes when that is larger.

    The colours come from the seed's first path segment (the generation id), so the watermarked
    and clean variants show the same picture while the seed in the `free` box makes them differ.
    """

    size: int
    seed: str
    duration_ms: int = 10_000
    width: int = 0
    height: int = 0

    def _parts(self) -> tuple[bytes, bytes]:
        w, h = clip_size(self.width, self.height)
        head, samples = _movie(Clip(w, h, max(1, self.duration_ms), self.seed.partition("/")[0]))
        return head + _box(b"free", hashlib.sha256(self.seed.encode()).digest()), samples

    def header(self) -> bytes:
        """Every box up to and including the `mdat` header."""
        head, samples = self._parts()
        mdat_size = max(self.size - len(head), 8 + len(samples))
        return head + struct.pack(">I", mdat_size) + b"mdat"

    @property
    def total(self) -> int:
        """The real file length (a request below the playable minimum is rounded up)."""
        head, samples = self._parts()
        return max(self.size, len(head) + 8 + len(samples))

    def iter_range(self, start: int, end: int, chunk: int) -> Iterator[bytes]:
        """Yield bytes [start, end) in pieces of at most `chunk` bytes."""
        body = self.header() + self._parts()[1]
        pattern = random.Random(self.seed).randbytes(_PATTERN_BYTES) if end > len(body) else b""
        pos = start
        while pos < end:
            if pos < len(body):
                piece = body[pos : min(end, len(body), pos + chunk)]
            else:
                # Padding after the samples: inside `mdat`, referenced by no sample, so unplayed.
                offset = (pos - len(body)) % _PATTERN_BYTES
                n = min(chunk, end - pos, _PATTERN_BYTES - offset)
                piece = pattern[offset : offset + n]
            pos += len(piece)
            yield piece

    def to_bytes(self) -> bytes:
        """The whole file; only for small files."""
        return b"".join(self.iter_range(0, self.total, _PATTERN_BYTES))


def mp4_bytes(size: int = DEFAULT_MP4_BYTES, seed: str = "sim") -> bytes:
    """A small complete MP4 (a playable 10 s landscape clip), handy for tests that upload a video."""
    return Mp4(size=size, seed=seed).to_bytes()


def video_shape(params: Mapping[str, Any], default_seconds: float = 5.0) -> dict[str, int]:
    """`duration_ms`, `width`, `height` for a MediaSpec from a live provider's create parameters:
    `seconds` and `size` "WxH" (OpenAI Videos), `duration` and `ratio` "W:H" (Seedance), or
    `response_format.duration` and `aspect_ratio` (Gemini)."""
    fmt = params.get("response_format")
    nested: Mapping[str, Any] = fmt if isinstance(fmt, Mapping) else {}
    seconds: Any = params.get("seconds", params.get("duration", nested.get("duration")))
    try:
        length = float(seconds) if seconds is not None else default_seconds
    except (TypeError, ValueError):
        length = default_seconds
    if length <= 0:  # Seedance's -1: the model picks; its default is what the caller passes
        length = default_seconds
    shape = str(params.get("size") or params.get("ratio") or nested.get("aspect_ratio") or "")
    width, sep, height = shape.replace(":", "x").partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        width, height = "16", "9"  # "adaptive" and anything unknown: landscape
    return {"duration_ms": round(length * 1000), "width": int(width), "height": int(height)}


# -- pictures ----------------------------------------------------------------------------------


def palette(key: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two clearly visible colours per key: a background and the checker squares on it."""
    r, g, b = (48 + c * 160 // 255 for c in hashlib.sha256(key.encode()).digest()[:3])
    return (r, g, b), (255 - r, 255 - g, 255 - b)  # the complement: the pattern always shows


def _ycc(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 studio-range Y, Cb, Cr, as H.264 decoders assume when nothing is signalled."""
    r, g, b = rgb
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    cb = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    cr = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return (round(y), round(cb), round(cr))


def _plane(
    width: int, height: int, cell: int, values: tuple[int, int], bar: tuple[int, int, int]
) -> bytes:
    """A checkerboard of `cell` squares with a bar of value bar[2] over rows >= bar[0], x < bar[1]."""
    rows = [
        b"".join(bytes([values[(x + parity) % 2]]) * cell for x in range(width // cell))
        for parity in (0, 1)
    ]
    top, length, value = bar
    out = []
    for y in range(height):
        row = rows[(y // cell) % 2]
        if y >= top:
            row = bytes([value]) * length + row[length:]
        out.append(row)
    return b"".join(out)


def _pictures(clip: Clip, count: int) -> Iterator[Picture]:
    """The checkerboard of the clip's colours with a white bar filling up along the bottom."""
    coded_w, coded_h = coded_size(clip.width, clip.height)
    background, accent = (_ycc(c) for c in palette(clip.key))
    white = _ycc((255, 255, 255))
    bar_top = clip.height - max(2, clip.height // 12) // 2 * 2
    for n in range(count):
        length = clip.width * (n + 1) // count // 2 * 2
        yield Picture(
            *(
                _plane(
                    coded_w // scale,
                    coded_h // scale,
                    16 // scale,
                    (background[i], accent[i]),
                    (bar_top // scale, length // scale, white[i]),
                )
                for i, scale in ((0, 1), (1, 2), (2, 2))
            )
        )


def pattern_png(key: str, width: int = 0, height: int = 0) -> bytes:
    """A PNG in the key's colours (checkerboard), in the orientation of width x height."""
    w, h = clip_size(width or 1, height or 1)
    background, accent = palette(key)
    cell = max(4, min(w, h) // 6)
    rows = [
        b"".join(bytes(background if (x // cell + y // cell) % 2 else accent) for x in range(w))
        for y in range(cell * 2)
    ]
    raw = b"".join(b"\x00" + rows[y % (cell * 2)] for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


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
