"""Account routes for every provider: thin handlers (parse and validate, call, render)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import keys
from ..credentials import (
    MAX_INVITE_CODE,
    OPTION_FIELDS,
    UNSET,
    check_client_id,
    check_credential_text,
    check_options,
    check_proxy,
)
from ..errors import BadRequestError, PermissionError_, json_response
from ..providers import DEFAULT_PROVIDER, PROVIDER_NAMES
from ..providers.registry import default_base_url
from .common import read_json, read_object, read_text

# Fields POST /api/tokens accepts; proxy_url is the reference's name for proxy.
_ADD_FIELDS = frozenset(
    {
        "token",
        "st",
        "rt",
        "client_id",
        "remark",
        "proxy",
        "proxy_url",
        "image_enabled",
        "video_enabled",
        "image_concurrency",
        "video_concurrency",
        "provider",
        "base_url",
        "models",
    }
)


def _str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"'{name}' must be a string, got {type(value).__name__}", param=name)
    return value


def _credential(body: dict[str, Any], name: str) -> str | None:
    """A token-like string field: surrounding whitespace is a paste artefact and is dropped, but a
    control character inside would reach an HTTP header (CR/LF split it, NUL breaks it)."""
    value = _str(body, name)
    if value is None:
        return None
    return (
        check_client_id(value, name) if name == "client_id" else check_credential_text(value, name)
    )


def _token_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"Token id must be an integer, got {raw!r}", param="id") from None
    if value < 1:
        raise BadRequestError(f"Token id must be a positive integer, got {value}", param="id")
    return value


def _require_admin(request: web.Request) -> None:
    if request.get(keys.REQ_ADMIN) is None:
        raise PermissionError_(
            "This needs an admin session (log in to the panel); the API key is not enough",
            code="admin_required",
        )


# -- list, add, delete (key_or_admin: the README's curl commands use the API key) ----------------


async def list_tokens(request: web.Request) -> web.Response:
    return json_response({"object": "list", "data": request.app[keys.ACCOUNT_VIEWS].views()})


async def get_token(request: web.Request) -> web.Response:
    return json_response(request.app[keys.ACCOUNT_VIEWS].view(_token_id(request)))


async def list_providers(request: web.Request) -> web.Response:
    """The providers an account may name here, with the base URL their SDK defaults to."""
    live = request.app[keys.PROVIDERS].names()
    config = request.app[keys.SETTINGS].current
    data = [
        {
            "name": n,
            "available": n == DEFAULT_PROVIDER or n in live,
            "default_base_url": default_base_url(config, n),
        }
        for n in PROVIDER_NAMES
    ]
    return json_response({"object": "list", "data": data})


async def add_token(request: web.Request) -> web.Response:
    body = await read_object(request, empty_ok=True)
    unknown = sorted(set(body) - _ADD_FIELDS)
    if unknown:
        raise BadRequestError(
            f"Unknown field '{unknown[0]}'; accepted: {', '.join(sorted(_ADD_FIELDS))}",
            param=unknown[0],
        )
    if "proxy_url" in body and "proxy" not in body:
        body["proxy"] = body.pop("proxy_url")
    if body.get("proxy"):
        check_proxy(body["proxy"])  # a malformed value is a 400 whoever sends it
        # A proxy makes this server connect wherever it points: an operator's decision.
        _require_admin(request)
    provider = (_str(body, "provider") or DEFAULT_PROVIDER).strip().lower()
    if provider == DEFAULT_PROVIDER:
        for name in ("base_url", "models"):
            if name in body:
                raise BadRequestError(
                    f"'{name}' is for another provider's account; a Sora token takes token, st "
                    "or rt",
                    param=name,
                )
        row, created = await request.app[keys.TOKENS].add(
            _credential(body, "token"),
            _credential(body, "st"),
            _credential(body, "rt"),
            client_id=_credential(body, "client_id"),
            **{name: body.get(name, UNSET) for name in OPTION_FIELDS},
        )
        message = f"Token {'added' if created else 'updated'}: {row.get('email') or 'no email'}"
    else:
        for name in ("st", "rt", "client_id"):
            if name in body:
                raise BadRequestError(
                    f"'{name}' is a Sora credential; a {provider} account takes token (its API "
                    "key) and base_url",
                    param=name,
                )
        row, created = await request.app[keys.ACCOUNTS].add_account(
            provider,
            _credential(body, "token"),
            body.get("base_url"),
            models=body.get("models", UNSET),
            options=check_options({name: body[name] for name in OPTION_FIELDS if name in body}),
            # An admin decides where the server connects (like a proxy); the API key alone
            # may only name a public host.
            trusted=request.get(keys.REQ_ADMIN) is not None,
        )
        message = f"{provider} account {'added' if created else 'updated'}: {row.get('base_url')}"
    view = request.app[keys.ACCOUNT_VIEWS].view(int(row["id"]))
    return json_response(
        {
            "success": True,
            "result": "created" if created else "updated",
            "message": message,
            # Problems that did not stop the add (plan unknown, no username set, ...).
            "warning": row.get("last_error") or None,
            "token": view,
        },
        status=201 if created else 200,
    )


async def delete_token(request: web.Request) -> web.Response:
    token_id = _token_id(request)
    await request.app[keys.ACCOUNTS].delete(token_id)
    return json_response({"success": True, "deleted": token_id})


# -- tests (key_or_admin: read-mostly, useful to bots) ------------------------------------------


async def test_token(request: web.Request) -> web.Response:
    return json_response(await request.app[keys.ACCOUNT_TESTS].test(_token_id(request)))


async def test_all(request: web.Request) -> web.Response:
    results = await request.app[keys.ACCOUNT_TESTS].test_all()
    return json_response(
        {"results": results, "ok": sum(1 for r in results if r.get("ok")), "total": len(results)}
    )


async def test_proxy(request: web.Request) -> web.Response:
    body = await read_object(request, empty_ok=True)
    proxy = _str(body, "proxy") or _str(body, "proxy_url") or ""
    return json_response(await request.app[keys.SORA_CONVERT].test_proxy(proxy))


# -- admin session only -----------------------------------------------------------------------


async def enable_token(request: web.Request) -> web.Response:
    token_id = _token_id(request)
    await request.app[keys.ACCOUNTS].set_enabled(token_id, True)
    return json_response({"success": True, "token": request.app[keys.ACCOUNT_VIEWS].view(token_id)})


async def disable_token(request: web.Request) -> web.Response:
    token_id = _token_id(request)
    await request.app[keys.ACCOUNTS].set_enabled(token_id, False)
    return json_response({"success": True, "token": request.app[keys.ACCOUNT_VIEWS].view(token_id)})


async def update_token(request: web.Request) -> web.Response:
    token_id = _token_id(request)
    body = await read_object(request, empty_ok=True)
    if "proxy_url" in body and "proxy" not in body:
        body["proxy"] = body.pop("proxy_url")
    await request.app[keys.ACCOUNTS].update(token_id, body)
    return json_response({"success": True, "token": request.app[keys.ACCOUNT_VIEWS].view(token_id)})


async def activate_token(request: web.Request) -> web.Response:
    token_id = _token_id(request)
    body = await read_object(request, empty_ok=True)
    code = _str(body, "invite_code") or request.query.get("invite_code", "")
    if len(code) > MAX_INVITE_CODE:
        raise BadRequestError(
            f"'invite_code' is longer than {MAX_INVITE_CODE} characters", param="invite_code"
        )
    return json_response(await request.app[keys.TOKENS].activate(token_id, code))


async def refresh_token(request: web.Request) -> web.Response:
    return json_response(await request.app[keys.TOKENS].refresh(_token_id(request)))


async def st2at(request: web.Request) -> web.Response:
    body = await read_object(request, empty_ok=True)
    result = await request.app[keys.SORA_CONVERT].st2at(
        _credential(body, "st") or "", _str(body, "proxy")
    )
    return json_response({"success": True, **result})


async def rt2at(request: web.Request) -> web.Response:
    body = await read_object(request, empty_ok=True)
    result = await request.app[keys.SORA_CONVERT].rt2at(
        _credential(body, "rt") or "", _credential(body, "client_id"), _str(body, "proxy")
    )
    return json_response({"success": True, **result})


async def import_tokens(request: web.Request) -> web.Response:
    """JSON {"format": "json"|"text", "data": ...}, a bare JSON list, or a text/plain body."""
    manager = request.app[keys.ACCOUNT_FILES]
    if request.content_type != "application/json":
        text = await read_text(request)
        if not text.lstrip().startswith(("[", "{")):
            return json_response(await manager.import_text(text))
    data = await read_json(request)
    if isinstance(data, list):
        return json_response(await manager.import_json(data))
    if not isinstance(data, dict):
        raise BadRequestError("Request body must be a JSON object or a list of token objects")
    if "data" not in data:
        if isinstance(data.get("tokens"), list):
            return json_response(await manager.import_json(data["tokens"]))
        raise BadRequestError("'data' is required (a list of token objects, or text)", param="data")
    payload = data["data"]
    fmt = data.get("format")
    if fmt is None:
        fmt = (
            "text" if isinstance(payload, str) and not payload.lstrip().startswith("[") else "json"
        )
    if fmt == "text":
        if not isinstance(payload, str):
            raise BadRequestError("'data' must be a string when format is text", param="data")
        return json_response(await manager.import_text(payload))
    if fmt == "json":
        return json_response(await manager.import_json(payload))
    raise BadRequestError(f"'format' must be json or text, got {fmt!r}", param="format")


async def export_tokens(request: web.Request) -> web.Response:
    _require_admin(request)  # the route is admin-only already; full secrets never go to an API key
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        raise BadRequestError(f"'format' must be json or text, got {fmt!r}", param="format")
    data = await request.app[keys.ACCOUNT_FILES].export(fmt)
    disposition = {
        "Content-Disposition": f'attachment; filename="sora2api-tokens.{"txt" if fmt == "text" else "json"}"'
    }
    if isinstance(data, str):
        return web.Response(text=data, content_type="text/plain", headers=disposition)
    return json_response(data, headers=disposition)
