"""Helpers every backend handler uses: state lookup, authentication, sentinel, query parsing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .backend import Backend
from .errors import SimError
from .incoming import Incoming
from .keys import INCOMING, SIM_STATE
from .records import Account
from .render import Renderer
from .state import SimState

SENTINEL_HEADER = "openai-sentinel-token"


def state_of(request: web.Request) -> SimState:
    """The simulator state of the app serving this request."""
    return request.app[SIM_STATE]


def backend_of(request: web.Request) -> Backend:
    """The backend's operations on the state of the app serving this request."""
    return Backend(request.app[SIM_STATE])


def incoming(request: web.Request) -> Incoming:
    """The body the middleware already parsed."""
    return request.get(INCOMING) or Incoming()


def renderer(request: web.Request) -> Renderer:
    """A renderer whose media URLs point back at the host the client used."""
    return Renderer(state_of(request), str(request.url.origin()))


def bearer(request: web.Request) -> str | None:
    """The bearer token, if the Authorization header carries one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(request: web.Request, *, region_check: bool = True) -> Account:
    """The account behind the bearer AT, or the backend's 401/403 for it."""
    state = state_of(request)
    token = bearer(request)
    record = state.tokens.get(token) if token else None
    account = state.accounts.get(record.email) if record else None
    if record is None or account is None:
        raise SimError(401, errors.MSG_UNPARSEABLE)
    if account.deactivated:
        raise SimError(401, errors.MSG_DEACTIVATED, code="account_deactivated")
    if record.revoked:
        raise SimError(401, errors.MSG_INVALIDATED, code="token_invalidated")
    if record.exp <= state.wall():
        raise SimError(401, errors.MSG_EXPIRED, code="token_expired")
    if region_check and account.country_blocked:
        raise SimError(
            403,
            "Sora is not available in your country or region.",  # assumption: wording unknown
            code="unsupported_country_code",
            param=account.country_blocked,
        )
    return account


def require_sora2(account: Account) -> None:
    """Sora 2 endpoints answer the invite/mine style 401 until the account is activated."""
    if not account.sora2:
        raise SimError(401, "Unauthorized")


def require_sentinel(request: web.Request) -> None:
    """In strict mode the four create/publish calls need a non-empty sentinel header."""
    if not state_of(request).settings.strict_sentinel:
        return
    if not request.headers.get(SENTINEL_HEADER, "").strip():
        raise SimError(400, errors.MSG_SENTINEL, code="sentinel_block")


def json_object(request: web.Request) -> dict[str, Any]:
    """The JSON body as an object, or 400 invalid_request."""
    body = incoming(request).json
    if not isinstance(body, dict):
        raise errors.invalid()
    return body


def query_int(request: web.Request, name: str, default: int, lo: int = 1, hi: int = 100) -> int:
    """An integer query parameter; a non-number is a 400, out-of-range values are clamped."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise errors.invalid(param=name) from exc
    return min(max(value, lo), hi)
