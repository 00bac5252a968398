"""Sora's access-token renewal: refresh from the ST or RT, the quota re-check, the background task.

A refresh-token exchange runs as a task of its own: once the auth host has answered, the old RT
is dead and the rotated one must be stored even if the caller went away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from functools import partial
from typing import Any

from ...credentials import as_number, clock_time, quota_values
from ...errors import BadRequestError, NotFoundError
from ...jwt import decode_jwt
from ...mask import mask
from ...pool import TokenPool
from ...settings import Settings
from ...store import Row
from ...transitions import Change, refresh_failed, refreshed
from ...upstream.errors import Kind, UpstreamFailure
from .client import SoraClient
from .probe import CREDENTIAL_KINDS, reason_of, result_of

log = logging.getLogger(__name__)

_REFRESH_FAILED = "Refresh failed: "
# Seconds before a token whose refresh failed is tried again by the background task.
_REFRESH_RETRY = 3600.0
SORA = "sora"


class SoraRefresher:
    """Renews Sora access tokens and re-reads quotas; skips accounts of other providers."""

    def __init__(self, settings: Settings, client: SoraClient, pool: TokenPool) -> None:
        self._settings = settings
        self._client = client
        self._pool = pool
        self._locks: dict[int, asyncio.Lock] = {}
        # Refresh-token exchanges that must finish even if their caller is cancelled.
        self._critical: set[asyncio.Task[Any]] = set()

    def _lock(self, token_id: int) -> asyncio.Lock:
        return self._locks.setdefault(token_id, asyncio.Lock())

    def forget(self, token_id: int) -> None:
        """Drop a deleted token's lock."""
        self._locks.pop(token_id, None)

    def _row(self, token_id: int) -> Row:
        return self._pool.state(token_id).row

    def _result(self, token_id: int, *, ok: bool, reason: str = "", **extra: Any) -> dict[str, Any]:
        return result_of(self._pool, token_id, ok=ok, reason=reason, **extra)

    async def refresh(self, token_id: int) -> dict[str, Any]:
        """New AT from the ST (first) or the RT; a failure is recorded on the token with the reason
        (and marks it expired only once its access token has lapsed)."""
        row = self._row(token_id)
        require_sora(row, "refresh")
        if not (row.get("session_token") or row.get("refresh_token")):
            last = f" ({row['refresh_error']})" if row.get("refresh_error") else ""
            raise BadRequestError(
                f"Token {token_id} has no session token or refresh token to refresh with{last}; "
                "add one with POST /api/tokens",
                code="no_refresh_credential",
            )
        return await self._refresh(token_id, only_if_due=False)

    def _due(self, row: Row, now: float) -> bool:
        if not (row.get("session_token") or row.get("refresh_token")):
            return False
        failed_at = row.get("refresh_error_at")
        if failed_at is not None:
            # A failed refresh is retried hourly, not every pass: hammering the auth hosts
            # helps nobody (credentials they refused are dropped already; this is an outage).
            wait = max(_REFRESH_RETRY, self._settings.current.pool.refresh_interval)
            if now - float(failed_at) < wait:
                return False
        if row["status"] == "expired":
            return True
        expires = row.get("at_expires")
        window = self._settings.current.pool.refresh_window
        return row["status"] == "active" and expires is not None and expires - now <= window

    async def _refresh(self, token_id: int, *, only_if_due: bool) -> dict[str, Any]:
        async with self._lock(token_id):
            row = dict(self._row(token_id))
            if only_if_due and not self._due(row, time.time()):
                return self._result(token_id, ok=True, reason="not due")
            st = row.get("session_token") or None
            rt = row.get("refresh_token") or None
            client_id = row.get("client_id") or None
            proxy = row.get("proxy") or None
            at: str | None = None
            new_rt: str | None = None
            expires_in: float | None = None
            problems: list[str] = []
            # Renewal credentials the auth host refused: dead for good, so they are dropped.
            dead: dict[str, str] = {}
            if st:
                try:
                    at = str((await self._client.st_to_at(st, proxy))["accessToken"])
                except UpstreamFailure as f:
                    problems.append(f"session token: {reason_of(f)}{_drop(f, dead, 'st', st)}")
            if at is None and rt:
                try:
                    data = await self._rotate(token_id, rt, client_id, proxy)
                    at = str(data["access_token"])
                    got = data.get("refresh_token")
                    new_rt = got if isinstance(got, str) and got and got != rt else None
                    expires_in = as_number(data.get("expires_in"))
                except UpstreamFailure as f:
                    problems.append(f"refresh token: {reason_of(f)}{_drop(f, dead, 'rt', rt)}")
            now = time.time()
            at_expires: float | None = None
            if at is not None:
                try:
                    exp = as_number(decode_jwt(at).get("exp"))
                except ValueError as exc:
                    problems.append(f"the new access token is unusable: {exc}")
                    at = None
                else:
                    at_expires = (
                        exp if exp is not None else (now + expires_in if expires_in else None)
                    )
                    if at_expires is not None and at_expires <= now:
                        problems.append(
                            f"the new access token already expired at {clock_time(at_expires)}"
                        )
                        at = None
            old_at = str(row["access_token"])
            if at is None:
                reason = _REFRESH_FAILED + "; ".join(problems)
                # Decided on the row as it is now: the token stays usable while its access token
                # lives, and an admin's disable made during the call stands.
                await self._pool.transition(token_id, refresh_failed(old_at, reason, dead, now))
                log.warning("token %d (%s): %s", token_id, row.get("email") or "no email", reason)
                return self._result(token_id, ok=False, reason=reason)
            text = "; ".join(problems)
            await self._pool.transition(
                token_id, refreshed(old_at, at, at_expires, text, dead, now)
            )
            log.info(
                "token %d refreshed via %s: AT %s, expires %s",
                token_id,
                "refresh token" if new_rt or not st or problems else "session token",
                mask(at),
                clock_time(at_expires),
            )
            return self._result(
                token_id,
                ok=True,
                reason=text,
                access_token=mask(at),
                refresh_token_rotated=bool(new_rt),
            )

    async def _rotate(
        self, token_id: int, rt: str, client_id: str | None, proxy: str | None
    ) -> dict[str, Any]:
        """rt_to_at whose rotated RT is stored even if the caller is cancelled mid-call: once
        the upstream has answered, the old RT is dead and the new one is the only key left."""

        async def exchange() -> dict[str, Any]:
            data = await self._client.rt_to_at(rt, client_id, proxy)
            got = data.get("refresh_token")
            if isinstance(got, str) and got and got != rt:
                with suppress(NotFoundError):
                    await self._pool.transition(token_id, replace_rt(rt, got))
            return data

        task = asyncio.create_task(exchange())
        self._critical.add(task)
        task.add_done_callback(_settle(self._critical))
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Let in-flight refresh-token exchanges store their result (bounded) before shutdown."""
        if self._critical:
            await asyncio.wait(
                self._critical, timeout=self._settings.current.upstream.request_timeout
            )

    async def refresh_quota(self, token_id: int) -> dict[str, Any]:
        """nf/check for one token; the job engine calls it after each video."""
        row = dict(self._row(token_id))
        if row.get("provider", SORA) != SORA:
            return {"id": token_id, "ok": True, "reason": "not a Sora token: no quota to read"}
        at = str(row["access_token"])
        try:
            info = await self._client.nf_check(at, row.get("proxy") or None)
        except UpstreamFailure as f:
            if f.kind in CREDENTIAL_KINDS:
                await self._pool.report_failure(token_id, f, at)
            log.info("token %d: quota check failed: %s", token_id, f.describe())
            return {"id": token_id, "ok": False, "reason": f"nf/check: {reason_of(f)}"}
        values = quota_values(info, time.time())
        await self._pool.update_row(token_id, values)
        return {"id": token_id, "ok": True, **values}

    async def refresh_due(self) -> None:
        """One pass of the background task: refresh ATs near expiry, re-check passed quota resets."""
        now = time.time()
        cfg = self._settings.current.pool
        sem = asyncio.Semaphore(max(1, cfg.test_concurrency))
        jobs = []
        for t in self._pool.tokens():
            if t.token.provider != SORA:
                continue  # AT/ST/RT renewal and nf/check are Sora's alone
            row = t.row
            if cfg.refresh_enabled and self._due(row, now):
                jobs.append(
                    self._guarded(sem, partial(self._refresh, t.id, only_if_due=True), t.id)
                )
            elif (
                row["status"] == "active"
                and row.get("sora2_supported")
                and row.get("quota_resets_at")
                and row["quota_resets_at"] <= now
            ):
                jobs.append(self._guarded(sem, partial(self.refresh_quota, t.id), t.id))
        if jobs:
            await asyncio.gather(*jobs)

    @staticmethod
    async def _guarded(
        sem: asyncio.Semaphore, job: Callable[[], Awaitable[Any]], token_id: int
    ) -> None:
        # `job` is a factory: a coroutine created before the semaphore could be cancelled unawaited.
        async with sem:
            try:
                await job()
            except NotFoundError:
                pass  # deleted meanwhile
            except Exception:
                log.exception("background refresh of token %d failed", token_id)

    async def run_refresher(self) -> None:
        """The background loop: a pass now, then every `pool.refresh_interval` seconds."""
        while True:
            try:
                await self.refresh_due()
            except Exception:
                log.exception("token refresh pass failed")
            await asyncio.sleep(max(self._settings.current.pool.refresh_interval, 0.05))


def require_sora(row: Row, action: str) -> None:
    """Refuse a Sora-only action on another provider's account, naming both."""
    provider = row.get("provider") or SORA
    if provider != SORA:
        raise BadRequestError(
            f"Token {row['id']} is a {provider} account: {action} applies to Sora tokens only",
            code="not_a_sora_token",
        )


def _settle(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    """Done-callback: forget the task and mark its exception retrieved (its caller may be gone)."""

    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("refresh-token exchange failed: %s", type(task.exception()).__name__)

    return done


def _drop(f: UpstreamFailure, dead: dict[str, str], which: str, value: str) -> str:
    """Note a renewal credential the auth host refused for good; the text to add to the reason."""
    refused = f.kind in (Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED) or (
        f.kind is Kind.BAD_REQUEST and "invalid_grant" in f.message
    )
    if not refused:
        return ""
    dead["session_token" if which == "st" else "refresh_token"] = value
    return " (removed: it cannot work again)"


def replace_rt(old: str, new: str, extra: Mapping[str, Any] | None = None) -> Change:
    """Store a rotated refresh token, unless the row holds another one by now (re-added)."""

    def change(row: Row) -> dict[str, Any]:
        if row.get("refresh_token") != old:
            return {}
        return {"refresh_token": new, **(extra or {})}

    return change
