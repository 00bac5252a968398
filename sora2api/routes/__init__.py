"""The one route table. Every route the service answers is listed here, with its auth level."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from .. import keys
from ..errors import AuthenticationError
from ..media import serve_media
from . import basic, chat

Auth = Literal["public", "key", "key_or_admin", "admin"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: Auth


# Order matters only where a literal path and a {variable} path could both match: literal first.
ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", basic.health, "public"),
    Route("GET", "/v1/models", basic.list_models, "key"),
    Route("GET", "/v1/models/{model}", basic.get_model_route, "key"),
    Route("POST", "/v1/chat/completions", chat.chat_completions, "key"),
    Route("GET", "/tmp/{name}", serve_media, "public"),
)


def _guarded(route: Route) -> Handler:
    """Wrap a handler with its route's auth check, so no route can forget one."""
    if route.auth == "public":
        return route.handler
    handler = route.handler
    level = route.auth

    async def checked(request: web.Request) -> web.StreamResponse:
        auth = request.app[keys.AUTH]
        if level == "key":
            auth.check_api_key(request)
        else:
            session = await auth.session(request)
            if session is not None:
                request["admin"] = session
            elif level == "key_or_admin" and auth.api_key_matches(request):
                request["admin"] = None
            else:
                raise AuthenticationError(
                    "Admin login required: send the session token from POST /api/login",
                    code="admin_auth_required",
                )
        return await handler(request)

    checked.__name__ = getattr(handler, "__name__", "handler")
    return checked


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _guarded(route))
