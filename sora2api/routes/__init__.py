"""The one route table. Every route the service answers is listed here, with its auth level."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from .. import keys
from ..errors import AuthenticationError, PermissionError_
from . import admin, api_keys, basic, chat, images, metrics, panel, public, videos, webhooks
from . import tokens as token_routes
from .media import serve_media
from .metrics import metrics_auth

# "metrics": the [metrics] token as a bearer token; no token configured, no route (404).
Auth = Literal["public", "key", "key_or_admin", "admin", "metrics"]
# The admin session of a request, when it came with one (absent for API-key-only access).
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
    Route("GET", "/metrics", metrics.scrape, "metrics"),
    Route("GET", "/v1/models", basic.list_models, "key"),
    Route("GET", "/v1/models/{model}", basic.get_model_route, "key"),
    Route("POST", "/v1/chat/completions", chat.chat_completions, "key"),
    # OpenAI Videos and Images APIs on the same job engine: literal paths before the {id} ones.
    Route("POST", "/v1/videos", videos.create_video, "key"),
    Route("GET", "/v1/videos", videos.list_videos, "key"),
    Route("POST", "/v1/videos/characters", videos.create_character, "key"),
    Route("GET", "/v1/videos/characters/{id}", videos.get_character, "key"),
    Route("POST", "/v1/videos/edits", videos.unsupported, "key"),
    Route("POST", "/v1/videos/extensions", videos.unsupported, "key"),
    Route("GET", "/v1/videos/{id}", videos.get_video, "key"),
    Route("DELETE", "/v1/videos/{id}", videos.delete_video, "key"),
    Route("GET", "/v1/videos/{id}/content", videos.video_content, "key"),
    Route("POST", "/v1/videos/{id}/remix", videos.remix_video, "key"),
    Route("POST", "/v1/images/generations", images.generations, "key"),
    Route("POST", "/v1/images/edits", images.edits, "key"),
    Route("GET", "/v1/images/{id}", images.get_image, "key"),
    Route("GET", "/tmp/{name}", serve_media, "public"),
    # Token management: literal paths before the {id} ones.
    Route("GET", "/api/tokens", token_routes.list_tokens, "key_or_admin"),
    Route("GET", "/api/providers", token_routes.list_providers, "key_or_admin"),
    Route("POST", "/api/tokens", token_routes.add_token, "key_or_admin"),
    Route("POST", "/api/tokens/st2at", token_routes.st2at, "admin"),
    Route("POST", "/api/tokens/rt2at", token_routes.rt2at, "admin"),
    Route("POST", "/api/tokens/import", token_routes.import_tokens, "admin"),
    Route("GET", "/api/tokens/export", token_routes.export_tokens, "admin"),
    Route("POST", "/api/tokens/test-all", token_routes.test_all, "key_or_admin"),
    Route("POST", "/api/tokens/test-proxy", token_routes.test_proxy, "admin"),
    Route("GET", "/api/tokens/{id}", token_routes.get_token, "key_or_admin"),
    Route("PUT", "/api/tokens/{id}", token_routes.update_token, "admin"),
    Route("DELETE", "/api/tokens/{id}", token_routes.delete_token, "key_or_admin"),
    Route("POST", "/api/tokens/{id}/test", token_routes.test_token, "key_or_admin"),
    Route("POST", "/api/tokens/{id}/enable", token_routes.enable_token, "admin"),
    Route("POST", "/api/tokens/{id}/disable", token_routes.disable_token, "admin"),
    Route("POST", "/api/tokens/{id}/update", token_routes.update_token, "admin"),
    Route("POST", "/api/tokens/{id}/activate", token_routes.activate_token, "admin"),
    Route("POST", "/api/tokens/{id}/refresh", token_routes.refresh_token, "admin"),
    # Sora data through one token. /api/characters/search must precede /api/characters/{id}.
    Route("GET", "/api/characters/search", public.search_characters, "key"),
    Route("GET", "/api/feed", public.public_feed, "key"),
    Route("GET", "/api/tokens/{id}/profile-feed", public.token_profile_feed, "key"),
    Route("GET", "/api/profile/{username}", public.profile, "key"),
    Route("GET", "/api/user/{user_id}/feed", public.user_feed, "key"),
    Route("GET", "/api/public/stats", public.public_stats, "key"),
    Route("GET", "/api/public/invite-code", public.invite_code, "key"),
    # The admin panel's API (session).
    Route("POST", "/api/login", admin.login, "public"),
    Route("POST", "/api/logout", admin.logout, "admin"),
    Route("GET", "/api/admin/me", admin.me, "admin"),
    Route("POST", "/api/admin/password", admin.change_password, "admin"),
    Route("POST", "/api/admin/apikey", admin.set_api_key, "admin"),
    # API keys with limits, and usage (the bootstrap key stays [auth] api_key).
    Route("GET", "/api/admin/keys", api_keys.list_keys, "admin"),
    Route("POST", "/api/admin/keys", api_keys.create_key, "admin"),
    Route("PUT", "/api/admin/keys/{id}", api_keys.update_key, "admin"),
    Route("DELETE", "/api/admin/keys/{id}", api_keys.delete_key, "admin"),
    Route("GET", "/api/admin/usage", api_keys.usage, "admin"),
    # Webhook deliveries (the outbox) and the bootstrap key's signing secret.
    Route("GET", "/api/admin/webhooks/deliveries", webhooks.list_deliveries, "admin"),
    Route("GET", "/api/admin/webhooks/secret", webhooks.bootstrap_secret, "admin"),
    Route("GET", "/api/admin/settings", admin.get_settings, "admin"),
    Route("PUT", "/api/admin/settings", admin.put_settings, "admin"),
    Route("GET", "/api/logs", admin.list_logs, "admin"),
    Route("GET", "/api/stats", admin.admin_stats, "admin"),
    Route("GET", "/api/jobs", admin.list_jobs, "admin"),
    Route("GET", "/api/jobs/{id}", admin.get_job, "admin"),
    Route("POST", "/api/jobs/{id}/cancel", admin.cancel_job, "admin"),
    Route("GET", "/api/characters", admin.list_characters, "admin"),
    Route("GET", "/api/characters/by-token/{id}", admin.characters_by_token, "admin"),
    Route("GET", "/api/characters/{id}", admin.get_character, "admin"),
    Route("POST", "/api/characters/{id}/visibility", admin.set_character_visibility, "admin"),
    Route("DELETE", "/api/characters/{id}", admin.delete_character, "admin"),
    # The admin panel: one page (it routes itself), its static files, the API key reveal.
    Route("GET", "/", panel.index, "public"),
    Route("GET", "/login", panel.index, "public"),
    Route("GET", "/static/{name}", panel.static, "public"),
    Route("GET", "/api/admin/apikey", panel.api_key, "admin"),
)


# What a session may still do while the admin password is the default: everything else is 403.
_PASSWORD_CHANGE_PATHS = frozenset({"/api/admin/me", "/api/admin/password", "/api/logout"})


def _guarded(route: Route) -> Handler:
    """Wrap a handler with its route's auth check, so no route can forget one."""
    if route.auth == "public":
        return route.handler
    handler = route.handler
    level = route.auth

    async def checked(request: web.Request) -> web.StreamResponse:
        auth = request.app[keys.AUTH]
        if level == "metrics":
            metrics_auth(request)
        elif level == "key":
            key = auth.check_api_key(request)
            if key is not None:
                request[keys.REQ_KEY] = key
        else:
            session = await auth.session(request)
            if session is not None:
                request[keys.REQ_ADMIN] = session
                if auth.password_is_default and route.path not in _PASSWORD_CHANGE_PATHS:
                    raise PermissionError_(
                        "Change the default admin password first: POST /api/admin/password",
                        code="password_change_required",
                    )
            elif level == "key_or_admin" and auth.api_key_matches(request):
                pass
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
        if route.method == "GET":
            # HEAD too: download managers and link checkers ask before fetching media.
            app.router.add_get(route.path, _guarded(route), allow_head=True)
        else:
            app.router.add_route(route.method, route.path, _guarded(route))
