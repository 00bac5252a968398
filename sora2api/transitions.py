"""The rules of a token's state: pure functions from the row as it is NOW to the columns to write.

Every write of a token row goes through TokenPool.transition, which calls one of these with the
current row under the token's lock. A decision is never made from a copy read before an await
(a refresh, a test, a re-add): what the admin or another job did meanwhile is seen and respected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .config import PoolConfig
from .store import Row
from .upstream.errors import Kind, UpstreamFailure

# Decides the columns to write from the current row; {} writes nothing.
Change = Callable[[Row], dict[str, Any]]

# Columns that say whether a token may serve: written only by the changes below.
STATE_COLUMNS = frozenset(
    {
        "status",
        "status_reason",
        "status_at",
        "is_active",
        "cooldown_until",
        "cooldown_reason",
        "cooldown_level",
    }
)
ADMIN_DISABLED = "disabled by admin"
# Renewal credentials a failed refresh may prove dead, by column.
RENEWAL_COLUMNS = ("session_token", "refresh_token")


def constant(values: Mapping[str, Any]) -> Change:
    """Write these columns whatever the row holds (credentials, account data, options)."""
    bad = STATE_COLUMNS.intersection(values)
    if bad:
        raise ValueError(
            f"{', '.join(sorted(bad))}: state columns change only through a transition"
        )
    return lambda _row: dict(values)


def chain(*changes: Change) -> Change:
    """Apply changes in order, each seeing the row as the previous ones left it."""

    def change(row: Row) -> dict[str, Any]:
        current, out = dict(row), {}
        for c in changes:
            step = c(current)
            current.update(step)
            out.update(step)
        return out

    return change


def admin(enabled: bool, now: float) -> Change:
    """The admin's enable (clears errors and cooldown) or disable: always the last word."""
    if enabled:
        values: dict[str, Any] = {
            "status": "active",
            "status_reason": "",
            "status_at": now,
            "is_active": 1,
            "consecutive_errors": 0,
            "cooldown_until": None,
            "cooldown_reason": "",
            "cooldown_level": 0,
        }
    else:
        values = {
            "status": "disabled",
            "status_reason": ADMIN_DISABLED,
            "status_at": now,
            "is_active": 0,
        }
    return lambda _row: dict(values)


def _admin_held(row: Row) -> bool:
    return row["status"] == "disabled" and row.get("status_reason") == ADMIN_DISABLED


def _revivable(row: Row) -> bool:
    """A credential verdict may lift this status (an admin's disable only the admin lifts)."""
    return row["status"] in ("expired", "invalid") or (
        row["status"] == "disabled" and not _admin_held(row)
    )


def _alive(now: float) -> dict[str, Any]:
    return {"status": "active", "status_reason": "", "status_at": now, "is_active": 1}


def rejected(at: str | None, kind: Kind, reason: str, now: float) -> Change:
    """The upstream refused access token `at` (None: whatever AT the row holds now)."""
    status = "expired" if kind is Kind.TOKEN_EXPIRED else "invalid"

    def change(row: Row) -> dict[str, Any]:
        if at is not None and row["access_token"] != at:
            return {}  # a verdict on an access token that has been replaced meanwhile
        values: dict[str, Any] = {"last_error": reason[:500], "last_error_at": now}
        if row["status"] != "disabled":
            values.update(status=status, status_reason=reason[:500], status_at=now)
        return values

    return change


def probed(at: str, values: Mapping[str, Any], now: float) -> Change:
    """A test of access token `at` passed: store what it learned, lift a credential verdict."""

    def change(row: Row) -> dict[str, Any]:
        out = dict(values)
        if row["access_token"] == at and _revivable(row):
            out.update(_alive(now))
        return out

    return change


def _dropped(row: Row, dead: Mapping[str, str]) -> dict[str, Any]:
    """Clear renewal credentials proved dead, unless someone stored new ones meanwhile."""
    return {col: None for col, value in dead.items() if row.get(col) == value}


def refreshed(
    old_at: str,
    at: str,
    at_expires: float | None,
    problems: str,
    dead: Mapping[str, str],
    now: float,
) -> Change:
    """A refresh gave a new access token: store it and lift an expired/invalid status."""

    def change(row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {"refresh_error": "", "refresh_error_at": None, **_dropped(row, dead)}
        if problems:
            out.update(last_error=problems[:500], last_error_at=now)
        if row["access_token"] != old_at:
            return out  # re-added meanwhile with a fresh access token: that one stays
        out.update(access_token=at, at_expires=at_expires)
        if row["status"] in ("expired", "invalid"):
            out.update(_alive(now))
        return out

    return change


def refresh_failed(old_at: str, reason: str, dead: Mapping[str, str], now: float) -> Change:
    """No new access token: record why; the token stays usable until its AT really expires."""

    def change(row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refresh_error": reason[:500],
            "refresh_error_at": now,
            "last_error": reason[:500],
            "last_error_at": now,
            **_dropped(row, dead),
        }
        expires = row.get("at_expires")
        lapsed = expires is not None and expires <= now
        if row["access_token"] == old_at and lapsed and row["status"] in ("active", "expired"):
            out.update(status="expired", status_reason=reason[:500], status_at=now)
        return out

    return change


def readded(values: Mapping[str, Any], *, renewing: bool, started: float) -> Change:
    """The account was added again (an add that began at `started`): what was given replaces
    what was stored, and a new ST/RT clears an old refresh failure. An admin's disable made
    while the add talked to the upstream stands; one made before it is overruled by the add."""

    def change(row: Row) -> dict[str, Any]:
        out = dict(values)
        if _admin_held(row) and float(row.get("status_at") or 0) >= started:
            for col in ("status", "status_reason", "status_at", "is_active"):
                out.pop(col, None)
        if renewing:
            out.update(refresh_error="", refresh_error_at=None)
        return out

    return change


def reacted(failure: UpstreamFailure, cfg: PoolConfig, now: float, at: str | None = None) -> Change:
    """The one reaction of a classified failure of a call made with the token (with access
    token `at` when the caller knows it: a verdict on a replaced one is then ignored)."""
    reaction = failure.token_reaction
    text = failure.describe()[:500]

    def change(row: Row) -> dict[str, Any]:
        values: dict[str, Any] = {"last_error": text, "last_error_at": now, "last_used_at": now}
        if reaction in ("invalidate", "expire"):
            kind = Kind.TOKEN_EXPIRED if reaction == "expire" else Kind.TOKEN_INVALID
            verdict = rejected(at, kind, text, now)(row)
            if not verdict:
                return {}
            values.update(verdict)
        elif reaction == "cooldown":
            level = int(row.get("cooldown_level") or 0)
            wait = failure.retry_after or min(cfg.cooldown_base * (2**level), cfg.cooldown_max)
            values.update(cooldown_until=now + wait, cooldown_reason=text, cooldown_level=level + 1)
        elif reaction == "quota":
            values.update(quota_remaining=0, quota_resets_at=now + (failure.retry_after or 3600.0))
        elif reaction == "error":
            errors = int(row.get("consecutive_errors") or 0) + 1
            values.update(
                consecutive_errors=errors, error_count=int(row.get("error_count") or 0) + 1
            )
            threshold = cfg.error_ban_threshold
            if threshold and errors >= threshold and row["status"] == "active":
                values.update(
                    status="disabled",
                    status_reason=f"{errors} consecutive unexplained errors; last: {text}",
                    status_at=now,
                )
        return values

    return change


def succeeded(kind: str, now: float) -> Change:
    """A job finished on the token: count it and forget the error streak and backoff level."""

    def change(row: Row) -> dict[str, Any]:
        return {
            f"{kind}_count": int(row.get(f"{kind}_count") or 0) + 1,
            "consecutive_errors": 0,
            "cooldown_level": 0,
            "last_used_at": now,
        }

    return change
