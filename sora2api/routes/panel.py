"""The admin panel: the single page, its static files, and the API key reveal it needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from aiohttp import web

from .. import keys
from ..errors import NotFoundError, PermissionError_, json_response
from ..mask import mask

WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"

# One flat folder of plain names: no slash, no dot-dot, no hidden files, a known extension.
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(?:html|css|js|svg|png|ico|txt)$")
_TYPES: Final = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
    "txt": "text/plain; charset=utf-8",
}

# Media results may live on another host (public_url behind a CDN), hence http:/https: for img
# and media; scripts, styles and fetches stay same-origin, so injected markup can do nothing.
CSP: Final = (
    "default-src 'self'; img-src 'self' data: http: https:; media-src 'self' http: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        # File names carry no version hash (no build step): revalidate every time, ETag keeps it cheap.
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _file(name: str) -> web.FileResponse:
    if not _NAME.fullmatch(name):
        raise NotFoundError(f"No panel file named {name!r}")
    path = WEB_DIR / name
    if not path.is_file():
        raise NotFoundError(f"No panel file named {name!r}")
    return web.FileResponse(path, headers=_headers(_TYPES[name.rsplit(".", 1)[1]]))


async def index(request: web.Request) -> web.FileResponse:
    """GET / and GET /login: the single-page panel (it routes itself)."""
    return _file("index.html")


async def static(request: web.Request) -> web.FileResponse:
    """GET /static/{name}: one file of sora2api/web, by a strictly checked plain name."""
    return _file(request.match_info["name"])


async def api_key(request: web.Request) -> web.Response:
    """GET /api/admin/apikey: masked by default; in full only with ?reveal=1 (an explicit click)."""
    auth = request.app[keys.AUTH]
    # The route guard refuses this too; checked here as well since it hands out a secret.
    if auth.password_is_default:
        raise PermissionError_(
            "Change the default admin password first: POST /api/admin/password",
            code="password_change_required",
        )
    reveal = request.query.get("reveal") in ("1", "true")
    locked = ("auth", "api_key") in request.app[keys.SETTINGS].current.env_overrides
    return json_response(
        {
            "api_key": auth.api_key if reveal else mask(auth.api_key),
            "revealed": reveal,
            "locked": locked,
            "is_default": auth.api_key == "han1234",
        },
        headers={"Cache-Control": "no-store"},
    )
