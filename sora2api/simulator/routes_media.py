"""The media host: signed PNG/MP4 links, the /cdn redirect target, the third-party MP4 host."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .common import state_of
from .faults import expired_url_response, json_response, wait_unless_gone
from .keys import MEDIA_FAULT
from .media import DEFAULT_MP4_BYTES, Mp4, RangeError, parse_range, pattern_png
from .records import Fault, MediaSpec

_CHUNK = 256 * 1024
_PNG_NAMES = frozenset({"image.png", "avatar.png", "thumb.png"})
_MP4_NAMES = frozenset({"wm.mp4", "dl.mp4", "source.mp4"})
_BAD_SIGNATURE_XML = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
    "<Message>Signature did not match the signed resource.</Message></Error>"
)
_NOT_FOUND_XML = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code>'
    "<Message>The specified blob does not exist.</Message></Error>"
)


def _not_found() -> web.Response:
    return web.Response(status=404, text=_NOT_FOUND_XML, content_type="application/xml")


async def media(request: web.Request) -> web.StreamResponse:
    """GET /media/{key}/{filename} (and /cdn/media/…): needs a valid `sig`, honours `se=`."""
    state = state_of(request)
    key, filename = request.match_info["key"], request.match_info["filename"]
    path = f"/media/{key}/{filename}"
    verdict = state.check_media(path, dict(request.query))
    if verdict == "expired":
        return expired_url_response(state.settings.media_expired_status)
    if verdict == "forbidden":
        return web.Response(status=403, text=_BAD_SIGNATURE_XML, content_type="application/xml")
    spec = state.media.get(key)
    if spec is None:
        return _not_found()
    fault = request.get(MEDIA_FAULT)
    if fault is not None and fault.kind in _NOT_THE_FILE:
        return _not_the_file(fault, "video/mp4" if filename.endswith(".mp4") else "image/png")
    if filename in _PNG_NAMES:
        # A thumbnail shows its video's colours and orientation; avatars are square.
        body = pattern_png(key, spec.width, spec.height)
        if fault is not None and fault.kind == "stall_body":
            return await _stall(request, body, "image/png", float(fault.params.get("seconds", 600)))
        return web.Response(
            body=body, content_type="image/png", headers={"Cache-Control": "max-age=3600"}
        )
    if filename in _MP4_NAMES and spec.kind == "mp4":
        return await stream_mp4(request, spec, f"{key}/{filename}")
    return _not_found()


async def thirdparty_mp4(request: web.Request) -> web.StreamResponse:
    """GET /thirdparty/MP4/{post_id}.mp4: only while the post is published."""
    state = state_of(request)
    post = state.posts.get(request.match_info["post_id"])
    if post is None or post.deleted:
        return web.Response(status=404, text="Not Found")
    spec = state.media.get(post.generation_id) or MediaSpec(kind="mp4")
    fault = request.get(MEDIA_FAULT)
    if fault is not None and fault.kind in _NOT_THE_FILE:
        return _not_the_file(fault, "video/mp4")
    return await stream_mp4(request, spec, f"{post.generation_id}/source.mp4")


async def stream_mp4(request: web.Request, spec: MediaSpec, seed: str) -> web.StreamResponse:
    """Stream a generated MP4 in chunks, with optional Range, throttling and media faults."""
    state = state_of(request)
    settings = state.settings
    mp4 = Mp4(
        size=spec.size or DEFAULT_MP4_BYTES,
        seed=seed,
        duration_ms=spec.duration_ms,
        width=spec.width,
        height=spec.height,
    )
    total = mp4.total
    start, end, status = 0, total, 200
    range_header = request.headers.get("Range")
    if range_header and settings.media_range:
        try:
            wanted = parse_range(range_header, total)
        except RangeError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
        if wanted is not None:
            (start, end), status = wanted, 206
    resp = web.StreamResponse(status=status)
    resp.content_type = "video/mp4"
    resp.headers["Accept-Ranges"] = "bytes" if settings.media_range else "none"
    if status == 206:
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    resp.content_length = end - start
    fault = request.get(MEDIA_FAULT)
    if fault is not None and fault.kind == "stall_body" and request.method != "HEAD":
        head = mp4.header()[: end - start] if start == 0 else b""
        return await _stall(request, head, "video/mp4", float(fault.params.get("seconds", 600)))
    stop = _stop_at(fault, start, end)
    if stop < end:
        # Without closing, a keep-alive client would wait forever for the missing bytes.
        resp.force_close()
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    rate = spec.rate or settings.media_rate
    chunk = _CHUNK if not rate else max(1024, min(_CHUNK, int(rate / 10)))
    loop = asyncio.get_running_loop()
    began, sent = loop.time(), 0
    try:
        for piece in mp4.iter_range(start, stop, chunk):
            if state.closing.is_set():
                break
            sent += len(piece)
            if rate:
                # Pace by the total so far, so a transfer takes length/rate however it is chunked.
                await asyncio.sleep(max(0.0, began + sent / rate - loop.time()))
            await resp.write(piece)
    except ConnectionResetError:
        return resp  # the client went away; nothing left to do
    if stop < end or state.closing.is_set():
        if request.transport is not None:
            request.transport.abort()
        return resp
    await resp.write_eof()
    return resp


def _stop_at(fault: Fault | None, start: int, end: int) -> int:
    """Where a media fault cuts the body short (end when there is none)."""
    if fault is None:
        return end
    length = end - start
    if fault.kind == "disconnect":
        return start + min(length, int(fault.params.get("at", length // 2)))
    if fault.kind == "length_mismatch":
        return end - min(length, int(fault.params.get("missing", max(1, length // 4))))
    return end


_NOT_THE_FILE = frozenset({"json_error_200", "empty_body_200"})


def _not_the_file(fault: Fault, content_type: str) -> web.Response:
    """A 200 whose body is not the file: a JSON error (as some CDNs send) or nothing at all.
    The declared type stays the file's, as a misbehaving host would send it."""
    p = fault.params
    if fault.kind == "empty_body_200":
        return web.Response(
            status=200, body=b"", content_type=str(p.get("content_type", content_type))
        )
    message = str(p.get("message", "Blob storage is temporarily unavailable"))
    resp = json_response({"error": {"message": message, "code": p.get("code", "unavailable")}})
    resp.content_type = str(p.get("content_type", content_type))
    return resp


async def _stall(
    request: web.Request, head: bytes, content_type: str, seconds: float
) -> web.StreamResponse:
    """Send the headers and the first bytes, then nothing until `seconds` pass or the client leaves;
    the connection is then cut, so the promised length is never met."""
    resp = web.StreamResponse(status=200)
    resp.content_type = content_type
    resp.content_length = len(head) + 1024 * 1024
    resp.force_close()
    await resp.prepare(request)
    try:
        await resp.write(head)
    except ConnectionResetError:
        return resp
    await wait_unless_gone(request, seconds, state_of(request).closing)
    if request.transport is not None:
        request.transport.abort()
    return resp
