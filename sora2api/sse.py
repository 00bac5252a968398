"""Server-sent events written by hand onto a StreamResponse: one write per frame."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

KEEPALIVE = b": keep-alive\n\n"
# Seconds one frame may take to leave; past that the client counts as gone.
WRITE_TIMEOUT = 60.0
DONE = b"data: [DONE]\n\n"


def frame(obj: Any) -> bytes:
    """`data: <json>` plus the blank line that ends an event."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def open_stream(request: web.Request) -> web.StreamResponse:
    """Send the headers now, so the client and every proxy in between see the stream start."""
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            # nginx buffers proxied responses unless told not to; a buffered SSE stream stalls.
            "X-Accel-Buffering": "no",
            "Connection": "keep-alive",
        }
    )
    await resp.prepare(request)
    return resp


async def send(resp: web.StreamResponse, data: bytes) -> bool:
    """Write one frame; False once the client has gone (the job goes on without it)."""
    try:
        # A client that stops reading but keeps the socket open would block a write forever.
        async with asyncio.timeout(WRITE_TIMEOUT):
            await resp.write(data)
    except (ConnectionResetError, ConnectionError, RuntimeError, TimeoutError):
        return False
    return True


class OpenStreams:
    """How many SSE streams this app has open right now (GET /metrics reads it)."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count one stream for as long as the block runs, however it ends."""
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
