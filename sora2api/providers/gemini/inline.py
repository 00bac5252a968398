"""Inline video data out of an interaction's JSON, streamed: base64 decoded to disk as it arrives.

A completed interaction may carry the whole MP4 as base64 inside its JSON (`"data": "..."`). The
body is scanned chunk by chunk: every string value of a "data" key goes straight through a
chunked base64 decoder into its own file and is replaced in the JSON by a placeholder, so what
stays in memory is the small rest of the document plus one chunk, whatever the video's size.
"""

from __future__ import annotations

import binascii
import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import IO, Any

import orjson

from ...upstream.errors import Kind, UpstreamFailure
from .errors import WHO

# What replaces a diverted string in the JSON kept in memory; the number indexes `blobs`.
PLACEHOLDER = "sora2api-inline-blob:"
_DATA_KEY = re.compile(rb'"data"\s*:\s*$')
_SPECIAL = re.compile(rb'["\\]')
# URL-safe base64 is accepted too (proto3 JSON readers must); decoded as the standard alphabet.
_URLSAFE = bytes.maketrans(b"-_", b"+/")
# Escapes a JSON encoder may put into base64 text: an escaped slash, and line breaks (dropped).
_ESCAPES = {ord("/"): b"/", ord("n"): b"", ord("r"): b"", ord("t"): b""}
# The JSON around the data (ids, status, usage) is small; more than this is not an interaction.
MAX_SKELETON = 4 << 20


class InlineExtractor:
    """Feed the body's chunks, then finish(): the parsed JSON, with blobs in files on disk."""

    def __init__(self, directory: Path, *, max_body: int, endpoint: str = "") -> None:
        self.directory = directory
        self.max_body = max_body
        self.endpoint = endpoint
        self.received = 0
        self.blobs: list[Path] = []
        self._skeleton = bytearray()
        self._in_string = False
        self._escape = False  # the previous byte was a backslash inside a string
        self._file: IO[bytes] | None = None  # set while inside a diverted "data" string
        self._quad = b""  # base64 text not yet decoded (fewer than 4 characters)
        self._padded = False  # the diverted string reached its "=" padding

    def _fail(self, message: str) -> UpstreamFailure:
        return UpstreamFailure(
            Kind.MALFORMED, message, status=200, endpoint=self.endpoint, upstream=WHO
        )

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body (any size, split anywhere)."""
        self.received += len(chunk)
        if self.received > self.max_body:
            raise self._fail(f"the response is larger than {self.max_body >> 20} MB")
        pos = 0
        while pos < len(chunk):
            pos = self._blob(chunk, pos) if self._file is not None else self._text(chunk, pos)
        if len(self._skeleton) > MAX_SKELETON:
            raise self._fail("the response's JSON is too large")

    def _text(self, chunk: bytes, pos: int) -> int:
        """Copy JSON into the skeleton up to where a "data" string opens (or the chunk ends)."""
        if self._escape:
            self._skeleton += chunk[pos : pos + 1]
            self._escape = False
            return pos + 1
        match = _SPECIAL.search(chunk, pos)
        if match is None:
            self._skeleton += chunk[pos:]
            return len(chunk)
        at = match.start()
        if chunk[at] == ord("\\"):
            self._skeleton += chunk[pos : at + 1]
            self._escape = self._in_string
            return at + 1
        self._skeleton += chunk[pos:at]
        if not self._in_string and _DATA_KEY.search(self._skeleton[-64:]):
            self._open_blob()
        else:
            self._in_string = not self._in_string
            self._skeleton += b'"'
        return at + 1

    def _open_blob(self) -> None:
        path = self.directory / f"{secrets.token_hex(16)}.mp4.part"
        self._file = path.open("xb")
        self.blobs.append(path)
        self._skeleton += f'"{PLACEHOLDER}{len(self.blobs) - 1}"'.encode()
        self._quad, self._padded = b"", False

    def _blob(self, chunk: bytes, pos: int) -> int:
        """Decode a diverted string's base64 up to its closing quote (or the chunk's end)."""
        if self._escape:
            replacement = _ESCAPES.get(chunk[pos])
            if replacement is None:
                raise self._fail("unexpected escape inside base64 video data")
            self._escape = False
            self._decode(replacement)
            return pos + 1
        match = _SPECIAL.search(chunk, pos)
        end = len(chunk) if match is None else match.start()
        self._decode(chunk[pos:end])
        if match is None:
            return end
        if chunk[end] == ord("\\"):
            self._escape = True
            return end + 1
        self._close_blob()
        return end + 1

    def _decode(self, text: bytes) -> None:
        if not text:
            return
        if self._padded:
            raise self._fail("base64 video data continues after its padding")
        text = self._quad + text.translate(_URLSAFE)
        cut = len(text) - len(text) % 4
        self._quad = text[cut:]
        self._write(text[:cut])

    def _write(self, quads: bytes) -> None:
        if not quads:
            return
        try:
            data = binascii.a2b_base64(quads, strict_mode=True)
        except binascii.Error as exc:
            raise self._fail(f"invalid base64 video data: {exc}") from None
        self._padded = quads.endswith(b"=")
        assert self._file is not None
        self._file.write(data)

    def _close_blob(self) -> None:
        rest = self._quad
        if len(rest) % 4 == 1:
            raise self._fail("truncated base64 video data")
        # Unpadded base64 is legal in proto3 JSON: pad the last group.
        self._write(rest + b"=" * (-len(rest) % 4) if rest else b"")
        self._quad = b""
        assert self._file is not None
        self._file.close()
        self._file = None

    def finish(self) -> Any:
        """The parsed JSON; its "data" strings are placeholders naming `blobs` entries."""
        if self._file is not None or self._in_string:
            raise self._fail(f"the response ended mid-string after {self.received} bytes")
        try:
            return orjson.loads(self._skeleton)
        except orjson.JSONDecodeError as exc:
            preview = bytes(self._skeleton[:120]).decode("utf-8", "replace")
            raise self._fail(f"expected JSON ({exc}), got {preview!r}") from None

    def blob(self, value: object) -> Path | None:
        """The file a placeholder names, or None when `value` is not one."""
        if not isinstance(value, str) or not value.startswith(PLACEHOLDER):
            return None
        index = value.removeprefix(PLACEHOLDER)
        return self.blobs[int(index)] if index.isdigit() and int(index) < len(self.blobs) else None

    def discard(self, keep: Path | None = None) -> None:
        """Delete every blob file but `keep` (on failure: all of them)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        for path in self.blobs:
            if path != keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
