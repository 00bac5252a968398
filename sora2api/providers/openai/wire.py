"""HTTP to an OpenAI-Videos-shaped gateway, and its answers read leniently.

Gateways (new-api, the LiteLLM proxy, resellers) bend OpenAI's contract: status words in any
case, "processing" and "unknown", `task_id` for `id`, a {code, message, data} wrapper around every
body, no progress at all, and error envelopes of their own. Everything here accepts all of them;
nothing outside this package sees a field name of the wire format.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from ...upstream.errors import Kind, UpstreamFailure, classify
from ...upstream.transport import TRANSPORT_ERRORS, read_capped, too_large, transport_failure
from ..base import Account, TaskState

WHO = "the gateway"
# The most a JSON answer of the gateway may be: a video object or a model list is a few KB.
MAX_BODY = 4 * 1024 * 1024
# new-api's task relay answers {code, message, data}; these codes mean success.
_OK_CODES = frozenset({"success", "ok", "0", "200"})
# Error codes (OpenAI's and gateways') that mean the content was refused.
_POLICY_CODES = frozenset(
    {
        "moderation_blocked",
        "content_policy_violation",
        "content_policy",
        "content_filter",
        "sensitive_words_detected",
        "prompt_blocked",
        "safety_violation",
    }
)
_POLICY_WORDS = ("moderation", "content policy", "safety system", "inappropriate content")
# Status words → the engine's states. Unknown words count as running, with the word as the stage.
_STATES: dict[str, TaskState] = {
    "queued": "queued",
    "pending": "queued",
    "unknown": "queued",
    "submitted": "queued",
    "not_start": "queued",
    "in_progress": "running",
    "processing": "running",
    "running": "running",
    "generating": "running",
    "completed": "completed",
    "succeeded": "completed",
    "success": "completed",
    "done": "completed",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


def failure(
    kind: Kind,
    message: str,
    *,
    status: int | None = None,
    code: str | None = None,
    endpoint: str = "",
    retry_after: float | None = None,
    sent: bool = True,
) -> UpstreamFailure:
    """An UpstreamFailure labelled as the gateway's."""
    return UpstreamFailure(
        kind,
        message,
        status=status,
        code=code,
        endpoint=endpoint,
        retry_after=retry_after,
        sent=sent,
        upstream=WHO,
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _code_and_message(data: Any) -> tuple[str | None, str]:
    """The error code and message of OpenAI's envelope or new-api's variants."""
    if not isinstance(data, dict):
        return None, ""
    err = data.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        return (str(code) if code not in (None, "") else None), str(err.get("message") or "")
    if isinstance(err, str) and err:
        return None, err
    # {code, message, data}: new-api's task relay.
    code = data.get("code")
    return (str(code) if code not in (None, "") else None), str(data.get("message") or "")


def is_policy(code: str | None, message: str) -> bool:
    low = message.lower()
    return (code or "").lower() in _POLICY_CODES or any(w in low for w in _POLICY_WORDS)


def classify_answer(
    status: int, body: bytes, content_type: str, headers: Mapping[str, str], endpoint: str
) -> UpstreamFailure:
    """One non-success answer → the shared kinds, with the gateway's message and Retry-After."""
    base = classify(status, body, content_type, endpoint)
    try:
        data = orjson.loads(body) if body[:1] in (b"{", b"[") else None
    except orjson.JSONDecodeError:
        data = None
    code, message = _code_and_message(data)
    message = message or base.message
    code = code or base.code
    kind = base.kind
    if is_policy(code, message):
        kind = Kind.CONTENT_POLICY
    elif status == 401 or (status == 403 and (code or "").startswith("invalid_api_key")):
        kind = Kind.TOKEN_INVALID  # an API key does not expire like a session: it is wrong
    elif status == 429:
        # OpenAI's own rate-limit text says "limit reached": only quota codes or words mean quota.
        quota = code in ("insufficient_quota", "quota_exceeded") or "quota" in message.lower()
        kind = Kind.QUOTA_EXHAUSTED if quota else Kind.RATE_LIMITED
    return failure(
        kind,
        message,
        status=status,
        code=code,
        endpoint=endpoint,
        retry_after=retry_after(headers),
    )


def unwrap(data: Any, status: int, endpoint: str) -> dict[str, Any]:
    """The object inside a {code, message, data} wrapper (or the body itself)."""
    if not isinstance(data, dict):
        raise failure(
            Kind.MALFORMED, f"expected a JSON object, got {str(data)[:120]!r}", endpoint=endpoint
        )
    if "code" in data and "data" in data and not any(k in data for k in ("id", "task_id")):
        inner = data.get("data")
        if isinstance(inner, dict):
            return inner
        code, message = _code_and_message(data)
        if str(code).lower() not in _OK_CODES:
            kind = Kind.CONTENT_POLICY if is_policy(code, message) else Kind.BAD_REQUEST
            # A refusal in a 200: the task was not made.
            raise failure(
                kind,
                message or f"refused with code {code}",
                status=status,
                code=code,
                endpoint=endpoint,
            )
        raise failure(Kind.MALFORMED, "the answer's data is empty", endpoint=endpoint)
    return data


def task_id_of(obj: Mapping[str, Any]) -> str | None:
    """The upstream's id: `id`, or `task_id` (new-api's legacy field)."""
    for key in ("id", "task_id"):
        value = obj.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def state_of(word: str) -> TaskState:
    return _STATES.get(word.strip().lower(), "running")


def progress_of(value: Any) -> float | None:
    """0..1 from a 0..100 number or "45%"; None when the gateway gives none."""
    if isinstance(value, str):
        value = value.strip().rstrip("%")
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return max(0.0, min(1.0, float(value) / 100.0))


def _proxy(account: Account) -> str | None:
    # aiohttp's per-request proxy speaks HTTP CONNECT only; a SOCKS proxy is not used here.
    proxy = account.proxy or None
    return proxy if proxy and proxy.lower().startswith("http") else None


def url(account: Account, path: str) -> str:
    return account.base_url.rstrip("/") + path


def auth_headers(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.key}"}


async def call(
    http: aiohttp.ClientSession,
    account: Account,
    method: str,
    path: str,
    *,
    endpoint: str,
    json: Any = None,
    data: aiohttp.FormData | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - one bound per call, in seconds
) -> Any:
    """One request; the parsed JSON of a 2xx, or an UpstreamFailure (sent=False only when the
    connection was never made, so nothing reached the gateway)."""
    headers = {**auth_headers(account), "Accept": "application/json"}
    try:
        async with (
            asyncio.timeout(timeout),
            http.request(
                method,
                url(account, path),
                json=json,
                data=data,
                headers=headers,
                proxy=_proxy(account),
                allow_redirects=False,
            ) as resp,
        ):
            # content.read(n) returns what is buffered, maybe a part: read up to the cap instead.
            body = await read_capped(resp, MAX_BODY)
            if big := too_large(body, MAX_BODY, endpoint=endpoint, upstream=WHO):
                raise big
            if not 200 <= resp.status < 300:
                raise classify_answer(resp.status, body, resp.content_type, resp.headers, endpoint)
            try:
                return orjson.loads(body) if body.strip() else {}
            except orjson.JSONDecodeError:
                raise failure(
                    Kind.MALFORMED,
                    f"HTTP {resp.status} with a body that is not JSON: {body[:120]!r}",
                    status=resp.status,
                    endpoint=endpoint,
                ) from None
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(exc, endpoint=endpoint, timeout=timeout, upstream=WHO) from None
