"""Upstream failures, classified once, here. Every caller reacts to the class, never to raw text."""

from __future__ import annotations

import enum
from typing import Any

import orjson


class Kind(enum.Enum):
    """What went wrong upstream; each kind has exactly one reaction (see REACTIONS)."""

    TOKEN_INVALID = "token_invalid"  # 401 token_invalidated / unparseable token
    TOKEN_EXPIRED = "token_expired"  # 401 token_expired
    RATE_LIMITED = "rate_limited"  # 429, too many concurrent tasks
    QUOTA_EXHAUSTED = "quota_exhausted"  # no videos left until the reset
    HEAVY_LOAD = "heavy_load"  # "We're under heavy load"
    CLOUDFLARE = "cloudflare"  # 403 HTML challenge page, cf_shield_429
    SENTINEL = "sentinel_block"  # 400 sentinel_block
    COUNTRY = "unsupported_country"  # unsupported_country_code
    CONTENT_POLICY = "content_policy"  # the prompt or result violated the content policy
    BAD_REQUEST = "bad_request"  # 400 the request itself was refused
    NOT_FOUND = "not_found"  # 404 on an id we sent
    SERVER = "server_error"  # 5xx
    MALFORMED = "malformed_response"  # 2xx but not the JSON we need
    TIMEOUT = "timeout"  # no answer in time
    TRANSPORT = "transport"  # connection refused / reset


# The one reaction of each kind: what the pool does to the token, and whether the job may move on.
#   token: "expire" | "invalidate" | "cooldown" | "quota" | "error" (counts toward the ban) | None
#   switch: the job retries on another token (never for content policy or a bad request)
REACTIONS: dict[Kind, tuple[str | None, bool]] = {
    Kind.TOKEN_INVALID: ("invalidate", True),
    Kind.TOKEN_EXPIRED: ("expire", True),
    Kind.RATE_LIMITED: ("cooldown", True),
    Kind.QUOTA_EXHAUSTED: ("quota", True),
    Kind.HEAVY_LOAD: ("cooldown", True),
    Kind.CLOUDFLARE: ("cooldown", True),
    Kind.SENTINEL: ("error", True),
    Kind.COUNTRY: ("invalidate", True),
    Kind.CONTENT_POLICY: (None, False),
    Kind.BAD_REQUEST: (None, False),
    Kind.NOT_FOUND: (None, False),
    Kind.SERVER: ("error", True),
    Kind.MALFORMED: ("error", True),
    Kind.TIMEOUT: ("error", True),
    Kind.TRANSPORT: ("error", True),
}

_HEAVY = "heavy load"
_QUOTA_WORDS = ("quota", "credit", "out of videos", "no videos remaining", "limit reached")


class UpstreamFailure(Exception):
    """A classified failure of one backend call, with the upstream's own reason."""

    def __init__(
        self,
        kind: Kind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        endpoint: str = "",
        retry_after: float | None = None,
        sent: bool = True,
        upstream: str = "Sora",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
        self.endpoint = endpoint
        self.retry_after = retry_after
        # False when the request provably never reached the backend (safe to resend a create).
        self.sent = sent
        # Who answered, as the user-facing text names it (a provider passes its own label).
        self.upstream = upstream
        # Set once the pool has been told, so a failure shared by many jobs is counted once.
        self.reported = False

    @property
    def token_reaction(self) -> str | None:
        return REACTIONS[self.kind][0]

    @property
    def switch_token(self) -> bool:
        return REACTIONS[self.kind][1]

    def describe(self) -> str:
        """The text a user sees: the class, the status and the upstream's reason."""
        who = self.upstream
        label = {
            Kind.TOKEN_INVALID: "Token invalid",
            Kind.TOKEN_EXPIRED: "Token expired",
            Kind.RATE_LIMITED: f"Rate limited by {who}",
            Kind.QUOTA_EXHAUSTED: "Video quota exhausted",
            Kind.HEAVY_LOAD: f"{who} is under heavy load",
            Kind.CLOUDFLARE: "Blocked by Cloudflare (anti-bot page); try a proxy for this token",
            Kind.SENTINEL: f"Blocked by {who}'s sentinel check",
            Kind.COUNTRY: f"{who} is not available in this account's region",
            Kind.CONTENT_POLICY: "Content policy violation",
            Kind.BAD_REQUEST: f"{who} rejected the request",
            Kind.NOT_FOUND: "Not found upstream",
            Kind.SERVER: f"{who} server error",
            Kind.MALFORMED: f"Unreadable response from {who}",
            Kind.TIMEOUT: f"{who} did not answer in time",
            Kind.TRANSPORT: f"Could not reach {who}",
        }[self.kind]
        where = f" on {self.endpoint}" if self.endpoint else ""
        status = f" (HTTP {self.status})" if self.status else ""
        if self.kind is Kind.CONTENT_POLICY:
            return f"{label}: {self.message}"
        return f"{label}{status}{where}: {self.message}"


def _text_of_html(body: str) -> str:
    if "Just a moment" in body or "cf-" in body or "Cloudflare" in body:
        return 'Cloudflare challenge page ("Just a moment...")'
    return "HTML error page"


def classify(status: int, body: bytes, content_type: str, endpoint: str) -> UpstreamFailure:
    """Turn one non-success backend answer into an UpstreamFailure."""
    text = body.decode("utf-8", "replace").strip()
    data: Any = None
    if text[:1] in "{[":
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
    err = data.get("error") if isinstance(data, dict) else None
    message = ""
    code: str | None = None
    param: str | None = None
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        code = err.get("code") if isinstance(err.get("code"), str) else None
        param = err.get("param") if isinstance(err.get("param"), str) else None
    elif isinstance(err, str):
        message = err
        desc = data.get("error_description") if isinstance(data, dict) else None
        if isinstance(desc, str) and desc:
            message = f"{err}: {desc}"
    elif isinstance(data, dict) and isinstance(data.get("detail"), str):
        message = data["detail"]
    is_html = "html" in content_type or text[:15].lower().startswith(("<!doctype", "<html"))
    if not message:
        message = _text_of_html(text) if is_html else (text[:300] or "empty response body")

    def fail(kind: Kind) -> UpstreamFailure:
        return UpstreamFailure(kind, message, status=status, code=code, endpoint=endpoint)

    low = message.lower()
    if _HEAVY in low:
        return fail(Kind.HEAVY_LOAD)
    if code == "unsupported_country_code":
        f = fail(Kind.COUNTRY)
        f.message = f"{message} (region {param})" if param else message
        return f
    if status == 401:
        if code == "token_expired" or "expired" in low:
            return fail(Kind.TOKEN_EXPIRED)
        return fail(Kind.TOKEN_INVALID)
    if code == "cf_shield_429" or (status == 403 and is_html):
        return fail(Kind.CLOUDFLARE)
    if code == "sentinel_block":
        return fail(Kind.SENTINEL)
    if code in ("content_policy_violation", "content_policy") or "content policy" in low:
        return fail(Kind.CONTENT_POLICY)
    if status == 429:
        if any(w in low for w in _QUOTA_WORDS) or code in ("quota_exceeded", "insufficient_quota"):
            return fail(Kind.QUOTA_EXHAUSTED)
        return fail(Kind.RATE_LIMITED)
    if status == 404:
        return fail(Kind.NOT_FOUND)
    if status >= 500:
        return fail(Kind.SERVER)
    if 400 <= status < 500:
        if any(w in low for w in _QUOTA_WORDS):
            return fail(Kind.QUOTA_EXHAUSTED)
        return fail(Kind.BAD_REQUEST)
    return fail(Kind.MALFORMED)


# The answers that do not prove a create failed: the task may exist upstream all the same.
_UNCERTAIN = frozenset({Kind.SERVER, Kind.MALFORMED, Kind.TIMEOUT, Kind.TRANSPORT})


def may_have_created(failure: UpstreamFailure) -> bool:
    """True when a create may have reached the upstream and made the task despite the failure:
    such a create is reconciled or failed with the reason, never resent."""
    return failure.sent and failure.kind in _UNCERTAIN
