"""/_sim/providers/: keys, gateway variants, knobs and provider-shaped faults."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiohttp import web

from ..common import state_of
from ..faults import json_response
from . import gemini, openai_videos, seedance
from .state import PROVIDERS, ProviderAccount, providers_of

# Where each provider's faults apply unless the caller names a path.
FAULT_PATHS = {
    "openai": "/v1/videos*",
    "seedance": seedance.BASE + "*",
    "gemini": "/v1*/interactions*",
}


async def _body(request: web.Request) -> dict[str, Any]:
    # Not routes_control's helper: that module imports this package (POST /_sim/reset).
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return data


def _bad(exc: Exception) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=str(exc))


def _describe(account: ProviderAccount) -> dict[str, Any]:
    # Simulator-made keys, worthless elsewhere: showing them is the point of the control API.
    return dataclasses.asdict(account)


async def accounts_add(request: web.Request) -> web.Response:
    """POST /_sim/providers/accounts {provider, name?, key?, models?, variant?, suspended?}."""
    body = await _body(request)
    try:
        provider = body.pop("provider")
        account = providers_of(request).add_account(provider, **body)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response(_describe(account), status=201)


async def accounts_list(request: web.Request) -> web.Response:
    """GET /_sim/providers/accounts."""
    return json_response([_describe(a) for a in providers_of(request).accounts.values()])


async def account_update(request: web.Request) -> web.Response:
    """POST /_sim/providers/accounts/{name} {models?, suspended?, variant?}."""
    ps = providers_of(request)
    name = request.match_info["name"]
    account = next((a for a in ps.accounts.values() if a.name == name), None)
    if account is None:
        raise web.HTTPNotFound(text=f"no provider account {name}")
    body = await _body(request)
    try:
        if "models" in body:
            account.models = [str(m) for m in body.pop("models")]
        if "suspended" in body:
            account.suspended = bool(body.pop("suspended"))
        if "variant" in body:
            variant = body.pop("variant")
            if variant is None:
                account.variant = None
            else:
                account.variant = account.variant or dataclasses.replace(ps.variant)
                account.variant.update(**variant)
        if body:
            raise ValueError(f"unknown fields: {sorted(body)}")
    except (TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response(_describe(account))


async def variant_set(request: web.Request) -> web.Response:
    """POST /_sim/providers/variant: the gateway variant of accounts without their own."""
    ps = providers_of(request)
    try:
        ps.variant.update(**await _body(request))
    except (TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response(dataclasses.asdict(ps.variant))


async def settings_get(request: web.Request) -> web.Response:
    """GET /_sim/providers/settings."""
    return json_response(dataclasses.asdict(providers_of(request).settings))


async def settings_set(request: web.Request) -> web.Response:
    """POST /_sim/providers/settings: set any ProviderSettings fields."""
    settings = providers_of(request).settings
    body = await _body(request)
    names = {f.name for f in dataclasses.fields(settings)}
    if set(body) - names:
        raise web.HTTPBadRequest(text=f"unknown settings: {sorted(set(body) - names)}")
    for name, value in body.items():
        setattr(settings, name, value)
    return json_response(dataclasses.asdict(settings))


def _error(
    provider: str, name: str, params: dict[str, Any], request: web.Request
) -> tuple[int, Any, dict[str, str]]:
    if provider == "openai":
        if name not in openai_videos.ERRORS:
            raise ValueError(
                f"unknown openai error {name!r}; known: {sorted(openai_videos.ERRORS)}"
            )
        ps = providers_of(request)
        token = params.get("token")
        variant = ps.variant_of(ps.accounts.get(token) if isinstance(token, str) else None)
        return openai_videos.fault(variant, name, params)
    if provider == "seedance":
        if name not in seedance.ERRORS:
            raise ValueError(f"unknown seedance error {name!r}; known: {sorted(seedance.ERRORS)}")
        return seedance.fault(name, params)
    if name not in gemini.FAULTS:
        raise ValueError(f"unknown gemini error {name!r}; known: {list(gemini.FAULTS)}")
    return gemini.fault(name, params)


async def faults_add(request: web.Request) -> web.Response:
    """POST /_sim/providers/faults {provider, error, method?, path?, times?, after?, token?, ...}.

    Becomes a `custom` fault of the shared mechanism (GET /_sim/faults lists it) carrying the
    provider's own envelope; `path` defaults to the provider's endpoints.
    """
    body = await _body(request)
    try:
        provider, name = body.pop("provider"), body.pop("error")
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {list(PROVIDERS)}")
        extra: dict[str, Any] = {
            k: body.pop(k)
            for k in ("message", "retry_after", "retry_delay", "daily", "quota_value")
            if k in body
        }
        status, payload, headers = _error(
            provider, name, {**extra, "token": body.get("token")}, request
        )
        method, path = body.pop("method", "*"), body.pop("path", FAULT_PATHS[provider])
        state_of(request).inject(
            method,
            path,
            "custom",
            status=status,
            json=payload,
            headers=headers,
            provider_error=name,
            **body,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(exc) from exc
    return json_response(
        {"ok": True, "status": status, "body": payload, "headers": headers}, status=201
    )


async def reset(request: web.Request) -> web.Response:
    """POST /_sim/providers/reset {keep_accounts?}: forget tasks (and keys unless kept)."""
    body = await _body(request)
    providers_of(request).reset(keep_accounts=bool(body.get("keep_accounts", False)))
    return json_response({"ok": True})


def routes() -> list[web.RouteDef]:
    """The provider half of the control API."""
    c = "/_sim/providers"
    return [
        web.post(f"{c}/accounts", accounts_add),
        web.get(f"{c}/accounts", accounts_list),
        web.post(f"{c}/accounts/{{name}}", account_update),
        web.post(f"{c}/variant", variant_set),
        web.get(f"{c}/settings", settings_get),
        web.post(f"{c}/settings", settings_set),
        web.post(f"{c}/faults", faults_add),
        web.post(f"{c}/reset", reset),
    ]
