"""Exceptions that carry their HTTP status, the one OpenAI error body, the one failure mapping."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from aiohttp import web

from .upstream.errors import Kind, UpstreamFailure


class ApiError(Exception):
    """An error the client sees: status, OpenAI error type, optional param and code."""

    status = 500
    type = "server_error"
    code: str | None = None
    # Extra response headers (Retry-After on a limit hit).
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class BadRequestError(ApiError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(ApiError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionError_(ApiError):  # noqa: N801 - the builtin name is taken
    status = 403
    type = "permission_error"


class NotFoundError(ApiError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class MethodNotAllowedError(ApiError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class ConflictError(ApiError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLargeError(ApiError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimitError(ApiError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(ApiError):
    """The Sora backend failed; the message carries the upstream's own reason."""

    status = 502
    type = "upstream_error"


class UnavailableError(ApiError):
    """No token can serve the request right now; the message says why."""

    status = 503
    type = "server_error"
    code = "no_available_tokens"


class TimeoutError_(ApiError):  # noqa: N801
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


def error_body(
    message: str, type_: str = "server_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error envelope, the only error shape this service sends."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response serialised by orjson."""
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(exc: ApiError) -> web.Response:
    """The error as the client sees it: its status and the OpenAI envelope."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if exc.headers:
        headers = {**(headers or {}), **exc.headers}
    return json_response(exc.body(), status=exc.status, headers=headers)


_HTTP_TYPES = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionError_,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """The envelope's error for an aiohttp HTTP exception (no route, wrong method, body too big)."""
    cls = _HTTP_TYPES.get(exc.status, BadRequestError if exc.status < 500 else ApiError)
    if exc.status == 404:
        msg = "Not found: no route matches this path"
    elif exc.status == 405:
        msg = f"Method not allowed: use {', '.join(sorted(getattr(exc, 'allowed_methods', ())))}"
    elif exc.status == 413:
        msg = f"Request body too large: the limit is {getattr(exc, 'max_size', 0) // (1024 * 1024)} MB"
    else:
        msg = exc.reason or exc.text or "Request failed"
    err = cls(msg)
    err.status = exc.status
    return err


# -- the one failure -> HTTP mapping -------------------------------------------------------------


class JobOutcome(Protocol):
    """A failed job as jobs.JobFailed carries it: a code, the user's message, a policy flag."""

    code: str
    message: str
    policy: bool


# What the upstream refuses about input the client gave us (a credential being added or
# converted, an invite code): the client's 400, not our 502.
_INPUT_KINDS = frozenset(
    {Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED, Kind.COUNTRY, Kind.BAD_REQUEST, Kind.NOT_FOUND}
)
_POLICY = "content_policy_violation"


def as_api_error(
    failure: UpstreamFailure | JobOutcome,
    *,
    message: str | None = None,
    param: str | None = None,
    caller_input: bool = False,
) -> ApiError:
    """The error a client sees for a failed upstream call or job, with the upstream's reason.

    `message` replaces the default text (the failure's own description) when the caller names
    the step; `caller_input` says the call carried the client's own credential or code, so what
    the upstream refuses as invalid is a 400. A job that failed while generating is the
    upstream's failure (502) unless its code says it is ours: no token, a restart, a timeout, a
    cancel. A refused prompt is a 400 content_policy_violation wherever it shows.
    """
    if isinstance(failure, UpstreamFailure):
        kind, text = failure.kind, message or failure.describe()
        if kind is Kind.CONTENT_POLICY:
            return BadRequestError(text, param=param, code=_POLICY)
        if (caller_input and kind in _INPUT_KINDS) or kind is Kind.BAD_REQUEST:
            return BadRequestError(text, param=param, code=kind.value)
        if kind is Kind.NOT_FOUND:
            return NotFoundError(text, param=param)
        return UpstreamError(text, param=param, code=kind.value)
    text = message or failure.message
    if failure.policy:
        return BadRequestError(text, param=param, code=_POLICY)
    if failure.code in ("no_available_tokens", "server_restarting"):
        return UnavailableError(text, param=param, code=failure.code)
    if failure.code == "timeout":
        return TimeoutError_(text, param=param)
    if failure.code == "cancelled":
        return ConflictError(text, param=param, code="job_cancelled")
    return UpstreamError(text, param=param, code=failure.code)
