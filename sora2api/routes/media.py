"""GET /tmp/{name}: the media cache's files, public to anyone holding the link."""

from __future__ import annotations

import time

from aiohttp import web

from .. import keys
from ..errors import NotFoundError
from ..media import CONTENT_TYPES


async def serve_media(request: web.Request) -> web.StreamResponse:
    """A cached file for anyone holding the link, with Range and sendfile."""
    media = request.app[keys.MEDIA]
    name = request.match_info["name"]
    path = media.resolve(name)
    expires = media.expires_at(name)
    if path is None or expires is None:
        raise NotFoundError("Media file not found or expired")
    # Caches may keep the file exactly as long as we serve it, never past its expiry.
    max_age = max(0, int(expires - time.time()))
    ext = name.rsplit(".", 1)[1]
    return web.FileResponse(
        path,
        headers={
            "Cache-Control": f"public, max-age={max_age}",
            "Content-Type": CONTENT_TYPES[ext],
            "X-Content-Type-Options": "nosniff",
        },
    )
