"""The hosts around the backend: ST->AT, RT->AT, the custom parser, the sentinel (2.9, 3.7, 8.1)."""

from __future__ import annotations

import re

from aiohttp import web

from .common import incoming, state_of
from .faults import json_response
from .render import iso, permalink
from .state import OAuthError

SESSION_COOKIE = "__Secure-next-auth.session-token"
_POST_ID_RE = re.compile(r"s_[0-9a-f]{32}")


async def auth_session(request: web.Request) -> web.Response:
    """GET /api/auth/session with the next-auth cookie -> `{"accessToken", "expires", "user"}`."""
    state = state_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    login = state.session_login(token) if token else None
    if login is None:
        return _session_failure(state.settings.session_failure)
    account, at, expires = login
    return json_response(
        {
            "user": {
                "id": account.user_id,
                "name": account.name,
                "email": account.email,
                "image": None,
                "picture": None,
                "idp": "auth0",
                "mfa": False,
                "groups": [],
            },
            "expires": iso(expires, millis=True),
            "accessToken": at,
            "authProvider": "auth0",
        }
    )


def _session_failure(mode: str) -> web.Response:
    if mode == "401_text":
        return web.Response(status=401, text="Unauthorized")
    if mode == "empty_200":
        return web.Response(status=200, body=b"", content_type="application/json")
    if mode == "no_access_token":
        return json_response({})
    return json_response(
        {"error": "Session expired or invalid", "code": "session_invalid"}, status=401
    )


async def oauth_token(request: web.Request) -> web.Response:
    """POST /oauth/token (JSON or form): a refresh_token grant; RTs rotate on every use."""
    body = incoming(request).json
    if not isinstance(body, dict):
        return _oauth_error(400, "invalid_request", "The request body must be JSON.")
    if body.get("grant_type") != "refresh_token":
        return _oauth_error(400, "unsupported_grant_type", "Only refresh_token is supported.")
    refresh_token = body.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return _oauth_error(400, "invalid_request", "Missing refresh_token.")
    client_id = body.get("client_id")
    state = state_of(request)
    try:
        account, at, new_rt = state.refresh(
            refresh_token, client_id if isinstance(client_id, str) else None
        )
    except OAuthError as exc:
        return _oauth_error(exc.status, exc.error, exc.description)
    return json_response(
        {
            "access_token": at,
            "refresh_token": new_rt,
            "expires_in": int(account.at_ttl),
            "token_type": "Bearer",
            "scope": "openid profile email offline_access",
        }
    )


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status)


async def get_sora_link(request: web.Request) -> web.Response:
    """POST /get-sora-link `{url, token}` -> `{download_link}` or `{error}` (custom parser)."""
    state = state_of(request)
    body = incoming(request).json
    if not isinstance(body, dict):
        return json_response({"error": "Invalid request body"}, status=400)
    if body.get("token") != state.settings.custom_parser_token:
        return json_response({"error": "Invalid token"})
    match = _POST_ID_RE.search(str(body.get("url", "")))
    post = state.posts.get(match.group(0)) if match else None
    if post is None or post.deleted:
        return json_response({"error": "Post not found"})
    origin = str(request.url.origin())
    link = state.media_url(origin, f"/media/{post.generation_id}/source.mp4")
    return json_response(
        {"download_link": link, "post_id": post.id, "permalink": permalink(post.id)}
    )


async def sentinel_req(request: web.Request) -> web.Response:
    """POST /backend-api/sentinel/req: a challenge that needs no proof of work."""
    state = state_of(request)
    return json_response(
        {
            "persona": "chatgpt-noauth",
            "token": "gAAAAAB" + state.ids.opaque(64),
            "proofofwork": {"required": False, "seed": state.ids.hex(16), "difficulty": "0fffff"},
            "turnstile": {"required": False, "dx": state.ids.opaque(32)},
        }
    )
