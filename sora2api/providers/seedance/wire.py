"""One Ark HTTP call, and Ark's error envelope classified into UpstreamFailure kinds."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from ...upstream.errors import Kind, UpstreamFailure
from ...upstream.transport import TRANSPORT_ERRORS, read_capped, too_large, transport_failure
from ..base import Account

# How failure texts name this upstream ("Seedance server error", "Rate limited by Seedance").
WHO = "Seedance"
# Largest JSON answer read from Ark (a task object is about 1 KB; a list page a few hundred).
MAX_RESPONSE = 4 << 20

# Ark's codes, as the Ark SDK and the docs name them; anything else falls back to the status.
_POLICY = frozenset(
    {
        "InputTextSensitiveContentDetected",
        "InputImageSensitiveContentDetected",
        "InputVideoSensitiveContentDetected",
        "InputAudioSensitiveContentDetected",
        "OutputVideoSensitiveContentDetected",
        "OutputTextSensitiveContentDetected",
        "OutputImageSensitiveContentDetected",
        "SensitiveContentDetected",
    }
)
_QUOTA = frozenset(
    {
        "QuotaExceeded",
        "AccountOverdueError",  # the account's balance is overdue: nothing runs until paid
        "SetLimitExceeded",  # the admin's own "safe experience" spending cap was reached
        "InsufficientQuota",
    }
)
_INVALID_KEY = frozenset({"AuthenticationError", "InvalidAccountStatus", "AccessDenied"})


def fail(kind: Kind, message: str, **details: Any) -> UpstreamFailure:
    """An UpstreamFailure that names Seedance as the upstream."""
    return UpstreamFailure(kind, message, upstream=WHO, **details)


def classify(
    status: int, raw: bytes, endpoint: str, retry_after: str | None = None
) -> UpstreamFailure:
    """Turn one non-success Ark answer into an UpstreamFailure with Ark's own message."""
    data: Any = None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    err = data.get("error") if isinstance(data, dict) else None
    code: str | None = None
    message = ""
    if isinstance(err, dict):
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = str(err.get("message") or "")
        param = err.get("param")
        if isinstance(param, str) and param and param not in message:
            message = f"{message} (param: {param})" if message else f"param: {param}"
    if not message:
        text = raw[:300].decode("utf-8", "replace").strip()
        message = text or "empty response body"
    kind = failure_kind(code, status)
    if kind is Kind.MALFORMED and code is None and status < 400:
        message = f"unexpected HTTP {status}: {message}"
    failure = fail(kind, message, status=status, code=code, endpoint=endpoint)
    if retry_after is not None:
        try:
            failure.retry_after = max(0.0, float(retry_after))
        except ValueError:
            pass  # an HTTP-date: the pool's own cooldown applies
    return failure


def failure_kind(code: str | None, status: int | None) -> Kind:
    """The kind of an Ark error code (a task's error has a code but no status)."""
    if code in _POLICY:
        return Kind.CONTENT_POLICY
    if code in _INVALID_KEY or status == 401:
        return Kind.TOKEN_INVALID
    if code in _QUOTA:
        return Kind.QUOTA_EXHAUSTED
    if code == "ServerOverloaded":
        return Kind.HEAVY_LOAD
    if code == "RateLimitExceeded" or (code or "").endswith("RateLimitExceeded") or status == 429:
        return Kind.RATE_LIMITED
    if code == "ResourceNotFound" or (status == 404 and code is None):
        return Kind.NOT_FOUND
    if status is None:
        # A task that failed on its own: Ark's InternalServiceError and its unnamed kin.
        return Kind.SERVER if not code or "Internal" in code else Kind.BAD_REQUEST
    if status >= 500:
        return Kind.SERVER
    if 400 <= status < 500:
        return Kind.BAD_REQUEST  # InvalidParameter, ModelNotOpen, ... : Ark refused this request
    return Kind.MALFORMED


def _proxy(account: Account) -> str | None:
    # aiohttp speaks http(s) proxies itself; a SOCKS proxy needs the app's connector session.
    if account.proxy and not account.proxy.startswith(("http://", "https://")):
        raise fail(
            Kind.BAD_REQUEST,
            "this account's proxy is not http(s); Seedance calls support http(s) proxies only",
            sent=False,
        )
    return account.proxy or None


async def call(
    http: aiohttp.ClientSession,
    account: Account,
    method: str,
    path: str,
    *,
    json: Any = None,
    query: dict[str, str] | None = None,
    limit: float = 60.0,
) -> Any:
    """One call to {base_url}{path}: the parsed JSON on 2xx, else a classified UpstreamFailure."""
    endpoint = f"{method} {path}"
    url = account.base_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {account.key}", "Accept": "application/json"}
    body: bytes | None = None
    if json is not None:
        body = orjson.dumps(json)
        headers["Content-Type"] = "application/json"
    proxy = _proxy(account)
    try:
        async with asyncio.timeout(limit):
            async with http.request(
                method, url, data=body, headers=headers, params=query, proxy=proxy
            ) as resp:
                raw = await read_capped(resp, MAX_RESPONSE)
                status, retry_after = resp.status, resp.headers.get("Retry-After")
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(exc, endpoint=endpoint, timeout=limit, upstream=WHO) from None
    if big := too_large(raw, MAX_RESPONSE, status=status, endpoint=endpoint, upstream=WHO):
        raise big
    if not 200 <= status < 300:
        raise classify(status, raw, endpoint, retry_after)
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        preview = raw[:120].decode("utf-8", "replace")
        raise fail(
            Kind.MALFORMED, f"expected JSON, got {preview!r}", status=status, endpoint=endpoint
        ) from None
