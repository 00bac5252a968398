"""Google's error envelope and an interaction's errors[], classified into UpstreamFailure kinds."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from ...upstream.errors import Kind, UpstreamFailure

# How user-facing failure text names this upstream (UpstreamFailure defaults to Sora).
WHO = "Gemini"

_RPC = "type.googleapis.com/google.rpc."
# A google.protobuf.Duration in JSON: seconds with up to nine fractional digits, then "s".
_DURATION = re.compile(r"\s*(\d+(?:\.\d{1,9})?)s\s*")
# Codes an interaction's errors[] carries when a safety filter blocked the input or the output
# (the finishReason / blockReason words of generateContent; Omni's own list is unpublished).
SAFETY_CODES = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "IMAGE_SAFETY",
        "RECITATION",
        "CONTENT_POLICY",
        "RAI",
    }
)
_SAFETY_WORDS = ("safety", "blocked", "prohibited", "responsible ai")


def retry_delay(text: object) -> float | None:
    """Seconds of a Duration string ("12s", "1.5s"), exactly; None when it is not one."""
    if not isinstance(text, str):
        return None
    match = _DURATION.fullmatch(text)
    return float(match.group(1)) if match else None


def _pacific() -> Any:
    """The US/Pacific zone Google's daily quotas reset in (fixed UTC-8 if tzdata is absent)."""
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - the standard library always has it
        return timezone(timedelta(hours=-8))
    try:
        return ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        return timezone(timedelta(hours=-8))


def seconds_to_daily_reset(now: datetime | None = None) -> float:
    """Seconds from now until the next midnight Pacific time, when per-day quotas reset."""
    tz = _pacific()
    local = (now or datetime.now(UTC)).astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz) + timedelta(days=1)
    # Built from the date, not by adding 24 h, so a DST change day is neither short nor long.
    midnight = datetime(midnight.year, midnight.month, midnight.day, tzinfo=tz)
    # In UTC: Python subtracts two times of one zone by their wall clocks, ignoring a DST change.
    return max((midnight.astimezone(UTC) - local.astimezone(UTC)).total_seconds(), 1.0)


def _details(err: dict[str, Any]) -> list[dict[str, Any]]:
    raw = err.get("details")
    return [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []


def _of_type(details: Iterable[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in details if str(d.get("@type", "")).removeprefix(_RPC) == name]


def _reasons(details: list[dict[str, Any]]) -> set[str]:
    return {str(d.get("reason")) for d in _of_type(details, "ErrorInfo") if d.get("reason")}


def _daily(details: list[dict[str, Any]]) -> bool:
    """Whether a QuotaFailure names a per-day quota (its quotaId says PerDay)."""
    for failure in _of_type(details, "QuotaFailure"):
        violations = failure.get("violations")
        for v in violations if isinstance(violations, list) else []:
            if isinstance(v, dict) and "perday" in str(v.get("quotaId", "")).lower():
                return True
    return False


def classify(status: int, body: bytes, endpoint: str) -> UpstreamFailure:
    """One non-2xx answer of the Gemini API as an UpstreamFailure with Google's own message."""
    data: Any = None
    try:
        data = orjson.loads(body) if body.strip()[:1] in (b"{", b"[") else None
    except orjson.JSONDecodeError:
        data = None
    # Some Google front ends wrap the envelope in a one-element list.
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None

    def fail(kind: Kind, message: str, code: str | None = None) -> UpstreamFailure:
        return UpstreamFailure(
            kind, message, status=status, code=code, endpoint=endpoint, upstream=WHO
        )

    if not isinstance(err, dict):
        text = body[:200].decode("utf-8", "replace").strip() or "empty body"
        if status >= 500:
            return fail(Kind.SERVER, f"HTTP {status}: {text}")
        if status == 429:
            return fail(Kind.RATE_LIMITED, f"HTTP 429: {text}")
        return fail(Kind.MALFORMED, f"HTTP {status} without Google's error envelope: {text!r}")
    message = str(err.get("message") or f"HTTP {status}")
    rpc = str(err.get("status") or "") or None
    details = _details(err)
    reasons = _reasons(details)
    low = message.lower()
    if "API_KEY_INVALID" in reasons or (status == 400 and "api key not valid" in low):
        return fail(Kind.TOKEN_INVALID, message, "API_KEY_INVALID")
    if status in (401, 403) or rpc in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return fail(Kind.TOKEN_INVALID, message, rpc)
    if rpc == "FAILED_PRECONDITION" and "location is not supported" in low:
        return fail(Kind.COUNTRY, message, rpc)
    if status == 429 or rpc == "RESOURCE_EXHAUSTED":
        delays = [retry_delay(d.get("retryDelay")) for d in _of_type(details, "RetryInfo")]
        delay = next((d for d in delays if d is not None), None)
        if _daily(details):
            failure = fail(Kind.QUOTA_EXHAUSTED, message, rpc)
            # Per-day quotas reset at midnight Pacific; a longer hint from Google wins.
            failure.retry_after = max(seconds_to_daily_reset(), delay or 0.0)
            return failure
        failure = fail(Kind.RATE_LIMITED, message, rpc)
        failure.retry_after = delay
        return failure
    if status == 404 or rpc == "NOT_FOUND":
        return fail(Kind.NOT_FOUND, message, rpc)
    if status >= 500:
        return fail(Kind.SERVER, message, rpc)
    if any(w in low for w in _SAFETY_WORDS) and status == 400:
        return fail(Kind.CONTENT_POLICY, message, rpc)
    if 400 <= status < 500:
        return fail(Kind.BAD_REQUEST, message, rpc)
    return fail(Kind.MALFORMED, f"HTTP {status}: {message}", rpc)


def interaction_failure(status: str, errors: object, endpoint: str) -> UpstreamFailure:
    """Why a finished interaction failed: a safety code is content policy (never retried)."""
    items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    codes = [str(e.get("code") or "") for e in items]
    text = "; ".join(str(e.get("message") or e.get("code") or "") for e in items if e)
    message = text or f"the interaction ended {status}"
    code = next((c for c in codes if c), None) or status
    low = message.lower()
    if any(c.upper() in SAFETY_CODES for c in codes) or any(w in low for w in _SAFETY_WORDS):
        return UpstreamFailure(
            Kind.CONTENT_POLICY, message, code=code, endpoint=endpoint, upstream=WHO
        )
    if status == "budget_exceeded":
        return UpstreamFailure(
            Kind.BAD_REQUEST, message, code=code, endpoint=endpoint, upstream=WHO
        )
    return UpstreamFailure(Kind.SERVER, message, code=code, endpoint=endpoint, upstream=WHO)
