"""Recognise image and video bytes by their magic numbers (never trust a declared type)."""

from __future__ import annotations

import base64
import binascii
import re

from .errors import BadRequestError

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*)(;base64)?,", re.ASCII)


def image_type(data: bytes) -> str | None:
    """'png' | 'jpeg' | 'gif' | 'webp' for image bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def video_type(data: bytes) -> str | None:
    """'mp4' | 'mov' | 'webm' for video bytes, else None."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mov" if data[8:10] == b"qt" else "mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None


MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}


def decode_base64(text: str, param: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet, padding optional) or a 400 naming the field."""
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact)
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"{param}: invalid base64 data", param=param) from None


def parse_data_url(url: str, param: str) -> bytes:
    """The bytes of a `data:[mime];base64,...` URL."""
    m = _DATA_URL.match(url)
    if m is None or not m.group(3):
        raise BadRequestError(f"{param}: only base64 data: URLs are supported", param=param)
    data = decode_base64(url[m.end() :], param)
    if not data:
        raise BadRequestError(f"{param}: the data: URL is empty", param=param)
    return data


def media_type(data: bytes) -> str | None:
    """The image or video type the first bytes show (see image_type, video_type), else None."""
    return image_type(data) or video_type(data)
