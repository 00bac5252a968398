"""The /_sim/ control API: the HTTP mirror of SimState's methods (never journaled)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiohttp import web

from .common import state_of
from .faults import json_response
from .providers.state import PROVIDER_STATE
from .records import Settings

_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(Settings))


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return data


def _bad(exc: Exception) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=str(exc))


def _settings_dict(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(settings)
    data["taken_usernames"] = sorted(settings.taken_usernames)
    data["invite_codes"] = sorted(settings.invite_codes)
    return data


async def accounts_add(request: web.Request) -> web.Response:
    """POST /_sim/accounts: add_account(**json) -> the account with its tokens."""
    state = state_of(request)
    try:
        account = state.add_account(**await _body(request))
    except (TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response(state.describe_account(account), status=201)


async def accounts_list(request: web.Request) -> web.Response:
    """GET /_sim/accounts."""
    state = state_of(request)
    return json_response([state.describe_account(a) for a in state.accounts.values()])


def _account(request: web.Request) -> Any:
    state = state_of(request)
    email = request.match_info["email"]
    if email not in state.accounts:
        raise web.HTTPNotFound(text=f"no account {email}")
    return state.accounts[email]


async def account_invalidate(request: web.Request) -> web.Response:
    """POST /_sim/accounts/{email}/invalidate `{"sessions": bool}`."""
    account = _account(request)
    body = await _body(request)
    state_of(request).invalidate(account, sessions=bool(body.get("sessions", False)))
    return json_response({"ok": True})


async def account_token(request: web.Request) -> web.Response:
    """POST /_sim/accounts/{email}/token `{"ttl": seconds}` -> a freshly minted AT."""
    account = _account(request)
    ttl = (await _body(request)).get("ttl")
    token = state_of(request).mint_access_token(
        account, ttl=float(ttl) if ttl is not None else None
    )
    return json_response({"access_token": token})


async def faults_add(request: web.Request) -> web.Response:
    """POST /_sim/faults `{method, path, kind, times?, token?, email?, after?, ...params}`."""
    body = await _body(request)
    try:
        method, path, kind = body.pop("method"), body.pop("path"), body.pop("kind")
        state_of(request).inject(method, path, kind, **body)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response({"ok": True}, status=201)


async def faults_list(request: web.Request) -> web.Response:
    """GET /_sim/faults."""
    return json_response([dataclasses.asdict(f) for f in state_of(request).faults])


async def faults_clear(request: web.Request) -> web.Response:
    """DELETE /_sim/faults."""
    state_of(request).clear_faults()
    return json_response({"ok": True})


async def scenario_add(request: web.Request) -> web.Response:
    """POST /_sim/scenario `{outcome?, email?, target?, times?, ...Scenario fields}`."""
    body = await _body(request)
    try:
        scenario = state_of(request).scenario(body.pop("outcome", "success"), **body)
    except (TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response(dataclasses.asdict(scenario), status=201)


async def scenario_clear(request: web.Request) -> web.Response:
    """DELETE /_sim/scenario."""
    state_of(request).clear_scenarios()
    return json_response({"ok": True})


async def journal_get(request: web.Request) -> web.Response:
    """GET /_sim/journal?path=<glob>&method=<M>."""
    state = state_of(request)
    entries = state.calls(request.query.get("method", "*"), request.query.get("path", "*"))
    return json_response([dataclasses.asdict(e) for e in entries])


async def journal_clear(request: web.Request) -> web.Response:
    """DELETE /_sim/journal (also zeroes the counters)."""
    state_of(request).clear_journal()
    return json_response({"ok": True})


async def counts_get(request: web.Request) -> web.Response:
    """GET /_sim/counts: calls per "METHOD path" and per account."""
    state = state_of(request)
    return json_response(
        {
            "calls": {f"{m} {p}": n for (m, p), n in state.counts.items()},
            "accounts": {a.email: dict(a.polls) for a in state.accounts.values()},
        }
    )


async def settings_get(request: web.Request) -> web.Response:
    """GET /_sim/settings."""
    return json_response(_settings_dict(state_of(request).settings))


async def settings_set(request: web.Request) -> web.Response:
    """POST /_sim/settings: set any Settings fields."""
    state = state_of(request)
    body = await _body(request)
    unknown = set(body) - _SETTING_NAMES
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown settings: {sorted(unknown)}")
    for name, value in body.items():
        if name in ("taken_usernames", "invite_codes"):
            value = set(value)
        setattr(state.settings, name, value)
    return json_response(_settings_dict(state.settings))


async def posts_list(request: web.Request) -> web.Response:
    """GET /_sim/posts?mine=1: posts, with their `deleted` flag (mine: only accounts' posts)."""
    mine = bool(request.query.get("mine"))
    posts = [p for p in state_of(request).posts.values() if not mine or p.email is not None]
    return json_response([dataclasses.asdict(p) for p in posts])


async def advance(request: web.Request) -> web.Response:
    """POST /_sim/advance `{"seconds": N}`: move the simulator clocks forward."""
    seconds = (await _body(request)).get("seconds")
    if not isinstance(seconds, int | float):
        raise web.HTTPBadRequest(text="seconds must be a number")
    state_of(request).advance(float(seconds))
    return json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    """POST /_sim/reset `{"keep_accounts": bool}`."""
    body = await _body(request)
    keep = bool(body.get("keep_accounts", False))
    state_of(request).reset(keep_accounts=keep)
    # The live-provider simulators share the clock and media: they start over too.
    request.app[PROVIDER_STATE].reset(keep_accounts=keep)
    return json_response({"ok": True})
