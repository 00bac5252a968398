"""The one failure -> HTTP mapping (errors.as_api_error): every route's status comes from here.

The routes' own tests prove each status over HTTP against the simulator; this table pins the
mapping itself, including the differences that are deliberate (a refused credential the client
gave is a 400, the same refusal of one of our tokens is a 502).
"""

from __future__ import annotations

import pytest

from sora2api.errors import as_api_error
from sora2api.jobs import JobFailed
from sora2api.upstream.errors import Kind, UpstreamFailure


def _failure(kind: Kind, message: str = "the upstream's reason") -> UpstreamFailure:
    return UpstreamFailure(kind, message, status=418, endpoint="GET /backend/me")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        (Kind.NOT_FOUND, 404, "not_found"),
        (Kind.BAD_REQUEST, 400, "bad_request"),
        (Kind.CONTENT_POLICY, 400, "content_policy_violation"),
        (Kind.TOKEN_INVALID, 502, "token_invalid"),
        (Kind.TOKEN_EXPIRED, 502, "token_expired"),
        (Kind.COUNTRY, 502, "unsupported_country"),
        (Kind.RATE_LIMITED, 502, "rate_limited"),
        (Kind.CLOUDFLARE, 502, "cloudflare"),
        (Kind.SERVER, 502, "server_error"),
        (Kind.MALFORMED, 502, "malformed_response"),
        (Kind.TIMEOUT, 502, "timeout"),
        (Kind.TRANSPORT, 502, "transport"),
    ],
)
def test_a_call_with_one_of_our_tokens(kind: Kind, status: int, code: str) -> None:
    err = as_api_error(_failure(kind))
    assert (err.status, err.code) == (status, code)
    # The default text is the failure's description: its class and the upstream's reason.
    assert err.message == _failure(kind).describe()
    assert "the upstream's reason" in err.message


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (Kind.TOKEN_INVALID, 400),
        (Kind.TOKEN_EXPIRED, 400),
        (Kind.COUNTRY, 400),
        (Kind.BAD_REQUEST, 400),
        (Kind.NOT_FOUND, 400),
        (Kind.CONTENT_POLICY, 400),
        (Kind.RATE_LIMITED, 502),
        (Kind.SERVER, 502),
        (Kind.TRANSPORT, 502),
    ],
)
def test_a_call_with_the_clients_own_credential(kind: Kind, status: int) -> None:
    err = as_api_error(_failure(kind), message="Adding failed: why", param="st", caller_input=True)
    assert err.status == status
    assert (err.message, err.param) == ("Adding failed: why", "st")
    assert err.body()["error"]["param"] == "st"


@pytest.mark.parametrize(
    ("failed", "status", "code", "type_"),
    [
        (JobFailed("no_available_tokens", "No tokens"), 503, "no_available_tokens", "server_error"),
        (JobFailed("server_restarting", "Restarting"), 503, "server_restarting", "server_error"),
        (JobFailed("timeout", "Too long"), 504, "upstream_timeout", "timeout_error"),
        (JobFailed("cancelled", "Cancelled"), 409, "job_cancelled", "invalid_request_error"),
        (
            JobFailed("content_policy_violation", "Refused", policy=True),
            400,
            "content_policy_violation",
            "invalid_request_error",
        ),
        # A task that failed while generating is the upstream's failure, whatever its class.
        (JobFailed("bad_request", "render farm on fire"), 502, "bad_request", "upstream_error"),
        (JobFailed("cache_failed", "Caching failed"), 502, "cache_failed", "upstream_error"),
        (JobFailed("internal_error", "Internal"), 502, "internal_error", "upstream_error"),
    ],
)
def test_a_failed_job(failed: JobFailed, status: int, code: str, type_: str) -> None:
    err = as_api_error(failed)
    assert (err.status, err.code, err.type, err.message) == (status, code, type_, failed.message)
    assert err.body() == {
        "error": {"message": failed.message, "type": type_, "param": None, "code": code}
    }
