"""Fault kinds and the responses they produce."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from . import errors
from .records import Fault

# Answered by the middleware instead of the handler.
RESPONSE_KINDS = frozenset(
    {
        "401_invalidated",
        "401_expired",
        "401_unparseable",
        "403_cloudflare",
        "403_country",
        "429",
        "429_concurrency",
        "heavy_load",
        "heavy_load_503",
        "400_sentinel",
        "400_invalid",
        "500",
        "502_html",
        "503_empty",
        "malformed_json",
        "empty_200",
        "missing_id",
        "custom",
        "expired_url",
        "redirect",
    }
)
# Need the connection itself: handled by the middleware around the handler.
CONNECTION_KINDS = frozenset({"hang", "reset", "slow_first_byte"})
# Only meaningful while streaming a file: applied by the media handlers, ignored elsewhere.
MEDIA_KINDS = frozenset(
    {
        "disconnect",
        "length_mismatch",
        # The media host answers 200 but the body is not the file (h4-media).
        "json_error_200",
        "empty_body_200",
        "stall_body",
    }
)
# The request takes effect (a create makes its task and spends quota), then the answer is
# replaced by the kind after the prefix: the answers that leave a client unsure whether its
# create happened. A request the handler refuses (401, 429, ...) gets that refusal instead.
CREATED_PREFIX = "created_"
CREATED_KINDS = frozenset(
    CREATED_PREFIX + k
    for k in ("500", "502_html", "503_empty", "malformed_json", "empty_200", "missing_id")
) | frozenset({"created_reset", "created_hang"})
FAULT_KINDS = RESPONSE_KINDS | CONNECTION_KINDS | MEDIA_KINDS | CREATED_KINDS

MAX_HANG_SECONDS = 600.0

CLOUDFLARE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">sora.chatgpt.com</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript>
</div></div></body></html>"""

BAD_GATEWAY_PAGE = """<html><head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>"""

GATEWAY_TIMEOUT_PAGE = """<html><head><title>504 Gateway Time-out</title></head>
<body><center><h1>504 Gateway Time-out</h1></center><hr><center>cloudflare</center></body></html>"""

# What Azure blob storage (the real media host) says for an expired SAS link.
EXPIRED_URL_XML = """<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>
<Message>Server failed to authenticate the request. Make sure the value of Authorization header is
formed correctly including the signature. Signed expiry time has passed.</Message></Error>"""


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """orjson bytes straight out."""
    return web.json_bytes_response(data, dumps=orjson.dumps, status=status, headers=headers)


def error_response(err: errors.SimError) -> web.Response:
    """The standard envelope for a SimError."""
    return json_response(err.body(), status=err.status)


def expired_url_response(status: int) -> web.Response:
    """The media host's answer to a link past its `se=` expiry."""
    return web.Response(status=status, text=EXPIRED_URL_XML, content_type="application/xml")


def _envelope(
    fault: Fault, status: int, message: str, code: str | None, type_: str
) -> web.Response:
    p = fault.params
    err = errors.SimError(
        int(p.get("status", status)),
        str(p.get("message", message)),
        code=p.get("code", code),
        type_=str(p.get("type", type_)),
        param=p.get("param"),
    )
    return error_response(err)


def fault_response(fault: Fault, request: web.Request) -> web.Response:
    """The canned response for one of RESPONSE_KINDS; param `retry_after` adds that header."""
    response = _canned(fault, request)
    if "retry_after" in fault.params:
        response.headers["Retry-After"] = str(fault.params["retry_after"])
    return response


def _canned(fault: Fault, request: web.Request) -> web.Response:
    p = fault.params
    kind = fault.kind
    if kind == "401_invalidated":
        return _envelope(
            fault, 401, errors.MSG_INVALIDATED, "token_invalidated", "invalid_request_error"
        )
    if kind == "401_expired":
        return _envelope(fault, 401, errors.MSG_EXPIRED, "token_expired", "invalid_request_error")
    if kind == "401_unparseable":
        return _envelope(fault, 401, errors.MSG_UNPARSEABLE, None, "invalid_request_error")
    if kind == "403_cloudflare":
        headers = {"cf-mitigated": "challenge", "Server": "cloudflare"}
        return web.Response(
            status=403, text=CLOUDFLARE_PAGE, content_type="text/html", headers=headers
        )
    if kind == "403_country":
        country = str(p.get("country", "CN"))
        msg = "Sora is not available in your country or region."  # assumption: wording unknown
        err = errors.SimError(403, msg, code="unsupported_country_code", param=country)
        return error_response(err)
    if kind == "429":
        msg = "Too many requests. Please slow down and try again later."
        return _envelope(fault, 429, msg, "rate_limit_exceeded", "rate_limit_error")
    if kind == "429_concurrency":
        message = concurrency_message(int(p.get("limit", 3)))
        return _envelope(fault, 429, message, "too_many_concurrent_tasks", "rate_limit_error")
    if kind == "heavy_load":
        return _envelope(fault, 429, errors.MSG_HEAVY_LOAD, None, "server_error")
    if kind == "heavy_load_503":
        return _envelope(fault, 503, errors.MSG_HEAVY_LOAD, None, "server_error")
    if kind == "400_sentinel":
        return _envelope(fault, 400, errors.MSG_SENTINEL, "sentinel_block", "invalid_request_error")
    if kind == "400_invalid":
        return _envelope(fault, 400, errors.MSG_INVALID, "invalid_request", "invalid_request_error")
    if kind == "500":
        return _envelope(fault, 500, "Internal server error", None, "server_error")
    if kind == "502_html":
        return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
    if kind == "503_empty":
        return web.Response(status=503, body=b"")
    if kind == "malformed_json":
        return web.Response(status=200, body=b'{"id": "task_01', content_type="application/json")
    if kind == "empty_200":
        return web.Response(status=200, body=b"", content_type="application/json")
    if kind == "missing_id":
        return json_response({})
    if kind == "expired_url":
        return expired_url_response(int(p.get("status", 403)))
    if kind == "redirect":
        # Stand-in for a CDN hop: the same file under /cdn, query (signature) kept.
        target = "/cdn" + request.rel_url.path_qs
        raise web.HTTPFound(location=str(p.get("location", target)))
    return _custom(p)


def _custom(p: dict[str, Any]) -> web.Response:
    status = int(p.get("status", 500))
    headers = {str(k): str(v) for k, v in (p.get("headers") or {}).items()}
    if "json" in p:
        return json_response(p["json"], status=status, headers=headers or None)
    content_type = str(p.get("content_type", "text/plain"))
    return web.Response(
        status=status, body=str(p.get("text", "")).encode(), content_type=content_type
    )


def concurrency_message(limit: int) -> str:
    """The text of the too-many-running-tasks 429 (assumption: the real wording is unrecorded)."""
    return (
        f"Too many concurrent tasks: you already have {limit} generations in progress. "
        "Please wait for one to finish before starting another."
    )


async def wait_unless_gone(request: web.Request, seconds: float, closing: asyncio.Event) -> bool:
    """Sleep up to `seconds`; stop early (False) when the client left or the server shuts down."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(seconds, MAX_HANG_SECONDS)
    while (remaining := deadline - loop.time()) > 0:
        transport = request.transport
        if closing.is_set() or transport is None or transport.is_closing():
            return False
        try:
            async with asyncio.timeout(min(0.2, remaining)):
                await closing.wait()
        except TimeoutError:
            pass
    return True


def gateway_timeout() -> web.Response:
    """What a proxy in front of the backend answers once a hang runs out."""
    return web.Response(status=504, text=GATEWAY_TIMEOUT_PAGE, content_type="text/html")
