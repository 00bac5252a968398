"""The token lifecycle: add, test, refresh, quota, activation, import/export, and the refresh task.

The pool (pool.py) owns live state and leasing; this module owns everything that talks to the
upstream about a credential and writes the result back through the pool, so the pool's in-memory
rows never go stale. Nothing here runs inline in a generation request except `refresh_quota`.
The pure, I/O-free helpers (classification, import parsing, input checks) are in credentials.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from . import keys
from .auth import mask
from .credentials import (
    OPTION_FIELDS,
    UNSET,
    ImportItem,
    as_number,
    check_options,
    check_proxy,
    clock_time,
    mask_proxy,
    parse_json,
    parse_text,
    quota_values,
    unmistakable_kind,
    username_candidates,
)
from .errors import ApiError, BadRequestError, NotFoundError, UpstreamError
from .pool import TokenPool
from .settings import Settings
from .store import Row, Store
from .transitions import (
    Change,
    admin,
    chain,
    constant,
    probed,
    reacted,
    readded,
    refresh_failed,
    refreshed,
    rejected,
)
from .upstream.client import SoraClient, decode_jwt, jwt_email
from .upstream.errors import Kind, UpstreamFailure

log = logging.getLogger(__name__)

# Failures that say the credential itself is bad (adding fails with 400, testing marks it).
_CREDENTIAL_KINDS = frozenset({Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED, Kind.COUNTRY})
# Failures that say our request was refused: also the caller's problem, so 400.
_REFUSED_KINDS = frozenset({Kind.BAD_REQUEST, Kind.NOT_FOUND})
_REFRESH_FAILED = "Refresh failed: "
# Seconds before a token whose refresh failed is tried again by the background task.
_REFRESH_RETRY = 3600.0


# -- upstream failures ---------------------------------------------------------------------------


def reason_of(failure: UpstreamFailure) -> str:
    """describe() without the endpoint: callers name the step themselves."""
    return UpstreamFailure(failure.kind, failure.message, status=failure.status).describe()


# -- internal values --------------------------------------------------------------------------


class _StepFailure(Exception):
    """One named step of adding/testing a token failed."""

    def __init__(self, step: str, failure: UpstreamFailure) -> None:
        super().__init__(f"{step}: {failure.message}")
        self.step = step
        self.failure = failure


class _Duplicate(Exception):
    def __init__(self, line: int, email: str) -> None:
        super().__init__(email)
        self.line = line
        self.email = email


@dataclass(slots=True)
class _Probe:
    """What the account endpoints said: columns to write, plus non-fatal problems."""

    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    email: str | None = None


# -- the manager ------------------------------------------------------------------------------


class TokenManager:
    """Every operation on a token's credentials and account data."""

    def __init__(
        self, settings: Settings, store: Store, client: SoraClient, pool: TokenPool
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._pool = pool
        self._locks: dict[int, asyncio.Lock] = {}
        # Upserts by email must not interleave (two adds of one account would both insert).
        self._write_lock = asyncio.Lock()
        # Refresh-token exchanges that must finish even if their caller is cancelled.
        self._critical: set[asyncio.Task[Any]] = set()

    def _lock(self, token_id: int) -> asyncio.Lock:
        return self._locks.setdefault(token_id, asyncio.Lock())

    def _row(self, token_id: int) -> Row:
        return self._pool.state(token_id).row

    # -- adding ------------------------------------------------------------------------------

    async def add(
        self,
        token: str | None = None,
        st: str | None = None,
        rt: str | None = None,
        *,
        client_id: str | None = None,
        remark: Any = UNSET,
        proxy: Any = UNSET,
        image_enabled: Any = UNSET,
        video_enabled: Any = UNSET,
        image_concurrency: Any = UNSET,
        video_concurrency: Any = UNSET,
    ) -> tuple[Row, bool]:
        """Add (or, for a known email, update) a token from an AT, else an ST, else an RT.

        Returns (row, created). Options left UNSET keep an existing token's values.
        """
        options = check_options(
            {
                "remark": remark,
                "proxy": proxy,
                "image_enabled": image_enabled,
                "video_enabled": video_enabled,
                "image_concurrency": image_concurrency,
                "video_concurrency": video_concurrency,
            }
        )
        row, created, _ = await self._add(
            # A pasted "Bearer eyJ..." is still the token.
            at=(token or "").strip().removeprefix("Bearer ").strip() or None,
            st=(st or "").strip() or None,
            rt=(rt or "").strip() or None,
            client_id=(client_id or "").strip() or None,
            options=options,
        )
        return row, created

    def _claims(self, at: str, source: str) -> dict[str, Any]:
        try:
            return decode_jwt(at)
        except ValueError as exc:
            hint = (
                "; a session token goes in 'st' and a refresh token in 'rt'"
                if source == "token"
                else f" (returned by {source})"
            )
            raise BadRequestError(
                f"Invalid access token: {exc}{hint}", param="token", code="invalid_access_token"
            ) from None

    async def _convert(
        self, st: str | None, rt: str | None, client_id: str | None, proxy: str | None, verb: str
    ) -> tuple[str, str | None, float | None]:
        """ST first, then RT → (AT, rotated RT or None, expires_in). Raises naming the step."""
        errors: list[tuple[str, UpstreamFailure]] = []
        if st:
            try:
                data = await self._client.st_to_at(st, proxy)
                return str(data["accessToken"]), None, None
            except UpstreamFailure as f:
                errors.append(("auth/session", f))
        if rt:
            try:
                data = await self._client.rt_to_at(rt, client_id, proxy)
                new_rt = data.get("refresh_token")
                return (
                    str(data["access_token"]),
                    new_rt if isinstance(new_rt, str) and new_rt else None,
                    as_number(data.get("expires_in")),
                )
            except UpstreamFailure as f:
                errors.append(("oauth/token", f))
        last = errors[-1][1]
        text = "; ".join(f"at step '{s}': {reason_of(f)}" for s, f in errors)
        raise _error_for(last, f"{verb} failed {text}")

    async def _add(
        self,
        *,
        at: str | None,
        st: str | None,
        rt: str | None,
        client_id: str | None,
        options: dict[str, Any],
        email_hint: str | None = None,
        claim: Callable[[str], None] | None = None,
        disabled_reason: str | None = None,
    ) -> tuple[Row, bool, list[str]]:
        if at and not st and not rt:
            # People paste whatever they have into "token": take the unmistakable shapes.
            shape = unmistakable_kind(at)
            if shape == "st":
                at, st = None, at
            elif shape == "rt":
                at, rt = None, at
        if not (at or st or rt):
            raise BadRequestError(
                "Give an access token ('token'), a session token ('st') or a refresh token ('rt')",
                param="token",
            )
        proxy = options.get("proxy") or None
        now = time.time()
        new_rt: str | None = None
        expires_in: float | None = None
        claims: dict[str, Any] | None = None
        if at:
            claims = self._claims(at, "token")
            exp = as_number(claims.get("exp"))
            if exp is not None and exp <= now:
                if not (st or rt):
                    raise BadRequestError(
                        f"The access token expired at {clock_time(exp)}; add a fresh one, or its "
                        "session token ('st') or refresh token ('rt')",
                        param="token",
                        code="token_expired",
                    )
                at, claims = None, None  # stale; the ST/RT below give a fresh one
        if at is None:
            at, new_rt, expires_in = await self._convert(
                st, rt, client_id, proxy, "Adding the token"
            )
            claims = self._claims(at, "auth/session" if st else "oauth/token")
        assert claims is not None
        exp = as_number(claims.get("exp"))
        at_expires = exp if exp is not None else (now + expires_in if expires_in else None)
        email = jwt_email(claims) or email_hint
        if claim is not None and email:
            claim(email)
        if "proxy" not in options and email:
            # Re-adding a known account: reach it through the proxy it already has.
            known = await self._store.fetchone(
                "SELECT proxy FROM tokens WHERE lower(email) = lower(?)", (email,)
            )
            proxy = (known or {}).get("proxy") or None
        base: dict[str, Any] = {"access_token": at, "at_expires": at_expires, "updated_at": now}
        if st:
            base["session_token"] = st
        if new_rt or rt:
            base["refresh_token"] = new_rt or rt
        if client_id:
            base["client_id"] = client_id
        try:
            probe = await self._probe(at, proxy, billing=True, set_username=True, email=email)
        except _StepFailure as sf:
            message = f"Adding the token failed at step '{sf.step}': {reason_of(sf.failure)}"
            if new_rt:
                # The caller's refresh token is spent; dropping the rotated one would leave them
                # with nothing. Keep it, with what the failure says about the token: a refused
                # credential marks it, a rate limit or an outage only cools it down.
                f = sf.failure
                verdict = (
                    rejected(at, f.kind, message, now)
                    if f.kind in _CREDENTIAL_KINDS
                    else reacted(f, self._settings.current.pool, now)
                )
                kept = constant({**base, **options, "email": email})
                token_id, _ = await self._upsert(email, at, chain(kept, verdict))
                status = self._row(token_id)["status"]
                message += (
                    f" (the refresh token had already been rotated: the new one is kept on "
                    f"token {token_id}, "
                    + (f"marked {status})" if status != "active" else "which stays active)")
                )
            raise _error_for(sf.failure, message) from None
        email = probe.email or email
        if claim is not None and email:
            claim(email)
        values: dict[str, Any] = {
            **probe.values,
            **base,
            "email": email,
            "status": "active",
            "status_reason": "",
            "status_at": now,
            "is_active": 1,
            "consecutive_errors": 0,
            "last_error": "; ".join(probe.warnings)[:500],
            "last_error_at": now if probe.warnings else None,
        }
        if disabled_reason:
            values.update(status="disabled", status_reason=disabled_reason, is_active=0)
        values.update(options)
        change = readded(values, renewing=bool(st or rt), started=now)
        token_id, created = await self._upsert(email, at, change)
        log.info(
            "token %d %s: %s (AT %s, expires %s)",
            token_id,
            "added" if created else "updated",
            email or "no email",
            mask(at),
            clock_time(at_expires),
        )
        return dict(self._row(token_id)), created, probe.warnings

    async def _upsert(self, email: str | None, at: str, change: Change) -> tuple[int, bool]:
        """Write a token row keyed by email (by AT when there is none); (id, created).
        An existing row takes `change` through the pool's one writer; a new one gets its values."""
        async with self._write_lock:
            if email:
                existing = await self._store.fetchone(
                    "SELECT id FROM tokens WHERE lower(email) = lower(?)", (email,)
                )
            else:
                existing = await self._store.fetchone(
                    "SELECT id FROM tokens WHERE access_token = ?", (at,)
                )
            if existing is not None:
                token_id = int(existing["id"])
                await self._pool.transition(token_id, change)
                return token_id, False
            # A new row: the change decides from what a fresh row holds.
            blank: Row = {"access_token": "", "status": "active", "status_reason": ""}
            return await self._pool.insert(change(blank)), True

    # -- account probing ---------------------------------------------------------------------

    async def _probe(
        self, at: str, proxy: str | None, *, billing: bool, set_username: bool, email: str | None
    ) -> _Probe:
        """/me, billing, invite/mine(+bootstrap), nf/check, username: fatal problems raise
        _StepFailure, the rest become warnings."""
        p = _Probe(email=email)
        try:
            me = await self._client.me(at, proxy)
        except UpstreamFailure as f:
            raise _StepFailure("me", f) from None
        username = ""
        if isinstance(me, dict):
            if isinstance(me.get("email"), str) and me["email"]:
                p.email = me["email"]
            if isinstance(me.get("name"), str):
                p.values["name"] = me["name"]
            if isinstance(me.get("username"), str):
                username = me["username"]
        p.values["username"] = username
        if billing:
            await self._billing(at, proxy, p)
        supported = await self._sora2(at, proxy, p)
        if supported:
            await self._quota(at, proxy, p)
        if set_username and not username:
            await self._set_username(at, proxy, p)
        return p

    async def _billing(self, at: str, proxy: str | None, p: _Probe) -> None:
        try:
            sub = await self._client.subscriptions(at, proxy)
        except UpstreamFailure as f:
            if f.kind in _CREDENTIAL_KINDS:
                raise _StepFailure("billing/subscriptions", f) from None
            p.warnings.append(f"billing/subscriptions: {reason_of(f)}")
            return
        data = sub.get("data") if isinstance(sub, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        raw_plan = first.get("plan")
        plan: dict[str, Any] = raw_plan if isinstance(raw_plan, dict) else {}
        end = first.get("end_ts")
        p.values.update(
            plan_type=str(plan.get("id") or ""),
            plan_title=str(plan.get("title") or ""),
            subscription_end="" if end is None else str(end),
        )

    async def _sora2(self, at: str, proxy: str | None, p: _Probe) -> bool:
        """invite/mine; a 401 "Unauthorized" there means "not activated": bootstrap, retry once."""
        try:
            inv = await self._client.invite_mine(at, proxy)
        except UpstreamFailure as f:
            if not _not_activated(f):
                if f.kind in _CREDENTIAL_KINDS:
                    raise _StepFailure("invite/mine", f) from None
                p.values["sora2_supported"] = 0
                p.warnings.append(f"invite/mine: {reason_of(f)} (Sora-2 support unknown)")
                return False
            try:
                await self._client.bootstrap(at, proxy)
                inv = await self._client.invite_mine(at, proxy)
            except UpstreamFailure as f2:
                if f2.kind is Kind.COUNTRY:
                    raise _StepFailure("invite/mine", f2) from None
                p.values["sora2_supported"] = 0
                if not _not_activated(f2):
                    p.warnings.append(f"Sora-2 check after m/bootstrap: {reason_of(f2)}")
                return False
        if not isinstance(inv, dict):
            inv = {}
        p.values.update(
            sora2_supported=1,
            sora2_invite_code=str(inv.get("invite_code") or ""),
            sora2_redeemed=int(as_number(inv.get("redeemed_count")) or 0),
            sora2_total=int(as_number(inv.get("total_count")) or 0),
        )
        return True

    async def _quota(self, at: str, proxy: str | None, p: _Probe) -> None:
        try:
            info = await self._client.nf_check(at, proxy)
        except UpstreamFailure as f:
            if f.kind in _CREDENTIAL_KINDS:
                raise _StepFailure("nf/check", f) from None
            p.warnings.append(f"nf/check: {reason_of(f)} (quota unknown)")
            return
        p.values.update(quota_values(info, time.time()))

    async def _set_username(self, at: str, proxy: str | None, p: _Probe) -> None:
        last = "every name offered was taken"
        for name in username_candidates(p.email):
            try:
                if not await self._client.username_check(at, name, proxy):
                    continue
                await self._client.username_set(at, name, proxy)
            except UpstreamFailure as f:
                last = reason_of(f)
                continue
            p.values["username"] = name
            log.info("set username %r for %s", name, p.email or "a new token")
            return
        p.warnings.append(
            f"username/set: the account has no username and setting one failed: {last}"
        )

    # -- testing -----------------------------------------------------------------------------

    async def test(self, token_id: int) -> dict[str, Any]:
        """/me, invite/mine(+bootstrap), nf/check; writes status, Sora-2 fields and quota back."""
        row = dict(self._row(token_id))
        now = time.time()
        try:
            probe = await self._probe(
                str(row["access_token"]),
                row.get("proxy") or None,
                billing=False,
                set_username=False,
                email=row.get("email"),
            )
        except _StepFailure as sf:
            f = sf.failure
            reason = f"Test failed at step '{sf.step}': {reason_of(f)}"
            at = str(row["access_token"])
            if f.kind in _CREDENTIAL_KINDS:
                await self._pool.transition(token_id, rejected(at, f.kind, reason, time.time()))
            else:
                await self._pool.update_row(
                    token_id, {"last_error": reason[:500], "last_error_at": time.time()}
                )
            log.info("token %d test failed: %s", token_id, reason)
            return self._result(token_id, ok=False, reason=reason)
        values = dict(probe.values)
        values["consecutive_errors"] = 0
        values["last_error"] = "; ".join(probe.warnings)[:500]
        values["last_error_at"] = now if probe.warnings else None
        # Decided on the row as it is after the probe: an admin's disable meanwhile stands.
        await self._pool.transition(token_id, probed(str(row["access_token"]), values, time.time()))
        return self._result(token_id, ok=True, reason="; ".join(probe.warnings))

    async def test_all(self) -> list[dict[str, Any]]:
        """Test every token, `pool.test_concurrency` at a time."""
        sem = asyncio.Semaphore(max(1, self._settings.current.pool.test_concurrency))

        async def one(token_id: int) -> dict[str, Any]:
            async with sem:
                try:
                    return await self.test(token_id)
                except NotFoundError:  # deleted meanwhile
                    return {"id": token_id, "ok": False, "reason": "deleted during the test"}

        ids = [t.id for t in self._pool.tokens()]
        return list(await asyncio.gather(*(one(i) for i in ids)))

    def _result(self, token_id: int, *, ok: bool, reason: str = "", **extra: Any) -> dict[str, Any]:
        r = self._row(token_id)
        return {
            "id": token_id,
            "ok": ok,
            "status": r["status"],
            "reason": reason or r.get("status_reason") or "",
            "email": r.get("email"),
            "username": r.get("username") or "",
            "plan": r.get("plan_type") or "",
            "plan_title": r.get("plan_title") or "",
            "sora2_supported": bool(r.get("sora2_supported")),
            "sora2_invite_code": r.get("sora2_invite_code") or "",
            "quota_remaining": r.get("quota_remaining"),
            "quota_resets_at": r.get("quota_resets_at"),
            "at_expires": r.get("at_expires"),
            **extra,
        }

    # -- refreshing --------------------------------------------------------------------------

    async def refresh(self, token_id: int) -> dict[str, Any]:
        """New AT from the ST (first) or the RT; a failure is recorded on the token with the reason
        (and marks it expired only once its access token has lapsed)."""
        row = self._row(token_id)
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
                    await self._pool.transition(token_id, _replace_rt(rt, got))
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
        at = str(row["access_token"])
        try:
            info = await self._client.nf_check(at, row.get("proxy") or None)
        except UpstreamFailure as f:
            if f.kind in _CREDENTIAL_KINDS:
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

    # -- admin actions -----------------------------------------------------------------------

    async def activate(self, token_id: int, invite_code: str) -> dict[str, Any]:
        """Redeem a Sora-2 invite code, then re-read invite/mine and nf/check."""
        code = (invite_code or "").strip()
        if not code:
            raise BadRequestError("'invite_code' is required", param="invite_code")
        row = dict(self._row(token_id))
        at, proxy = str(row["access_token"]), row.get("proxy") or None
        try:
            res = await self._client.invite_accept(at, code, proxy)
        except UpstreamFailure as f:
            raise _error_for(f, f"Activation failed: {reason_of(f)}", param="invite_code") from None
        if not isinstance(res, dict) or not (res.get("success") or res.get("already_accepted")):
            raise BadRequestError(
                f"Sora did not accept the invite code: {str(res)[:200]}", param="invite_code"
            )
        p = _Probe(email=row.get("email"))
        try:
            if await self._sora2(at, proxy, p):
                await self._quota(at, proxy, p)
        except _StepFailure as sf:
            p.warnings.append(f"{sf.step}: {reason_of(sf.failure)}")
        await self._pool.update_row(token_id, p.values)
        return self._result(
            token_id,
            ok=True,
            reason="; ".join(p.warnings),
            already_accepted=bool(res.get("already_accepted")),
        )

    async def set_enabled(self, token_id: int, enabled: bool) -> Row:
        """Admin enable (clears errors and cooldown) or disable ("disabled by admin")."""
        return await self._pool.transition(token_id, admin(enabled, time.time()))

    async def update(self, token_id: int, fields: Mapping[str, Any]) -> Row:
        """Change remark, proxy, enabled flags or concurrency limits."""
        self._row(token_id)
        values = check_options(fields)
        if not values:
            raise BadRequestError(f"Nothing to update; editable fields: {', '.join(OPTION_FIELDS)}")
        await self._pool.update_row(token_id, values)
        return dict(self._row(token_id))

    async def delete(self, token_id: int) -> None:
        """Remove a token for good (jobs holding it keep their slot until they end)."""
        await self._pool.delete(token_id)
        self._locks.pop(token_id, None)
        log.info("token %d deleted", token_id)

    # -- conversions -------------------------------------------------------------------------

    async def st2at(self, st: str, proxy: str | None = None) -> dict[str, Any]:
        """Convert a session token (nothing stored)."""
        st = (st or "").strip()
        if not st:
            raise BadRequestError("'st' is required", param="st")
        try:
            data = await self._client.st_to_at(st, check_proxy(proxy) or None)
        except UpstreamFailure as f:
            raise _error_for(
                f, f"Converting the session token failed: {reason_of(f)}", param="st"
            ) from None
        at = str(data["accessToken"])
        claims = self._claims(at, "auth/session")
        raw_user = data.get("user")
        user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
        return {
            "access_token": at,
            "email": user.get("email") or jwt_email(claims),
            "expires": data.get("expires"),
            "at_expires": as_number(claims.get("exp")),
        }

    async def rt2at(
        self, rt: str, client_id: str | None = None, proxy: str | None = None
    ) -> dict[str, Any]:
        """Convert a refresh token. It rotates: a stored token using it gets the new pair too."""
        rt = (rt or "").strip()
        if not rt:
            raise BadRequestError("'rt' is required", param="rt")
        stored = await self._store.fetchone(
            "SELECT id, client_id FROM tokens WHERE refresh_token = ?", (rt,)
        )
        if stored and not client_id:
            client_id = stored.get("client_id")
        try:
            data = await self._client.rt_to_at(rt, client_id or None, check_proxy(proxy) or None)
        except UpstreamFailure as f:
            raise _error_for(
                f, f"Converting the refresh token failed: {reason_of(f)}", param="rt"
            ) from None
        at = str(data["access_token"])
        claims = self._claims(at, "oauth/token")
        new_rt = data.get("refresh_token") if isinstance(data.get("refresh_token"), str) else None
        out: dict[str, Any] = {
            "access_token": at,
            "refresh_token": new_rt or rt,
            "refresh_token_rotated": bool(new_rt and new_rt != rt),
            "expires_in": data.get("expires_in"),
            "email": jwt_email(claims),
            "at_expires": as_number(claims.get("exp")),
            "updated_token_id": None,
        }
        if stored and new_rt and new_rt != rt:
            # Otherwise the stored token would keep a refresh token that no longer works.
            extra = {"access_token": at, "at_expires": out["at_expires"]}
            with suppress(NotFoundError):
                await self._pool.transition(int(stored["id"]), _replace_rt(rt, new_rt, extra))
                out["updated_token_id"] = int(stored["id"])
        return out

    async def test_proxy(self, proxy_url: str) -> dict[str, Any]:
        """Reach the upstream base URL through a proxy; any HTTP answer counts as reachable."""
        proxy = check_proxy(proxy_url)
        if not proxy:
            raise BadRequestError("'proxy' is required", param="proxy")
        limit = min(15.0, self._settings.current.upstream.request_timeout)
        start = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                await self._client.request(
                    "GET",
                    self._client.url("/"),
                    None,
                    proxy=proxy,
                    expect_json=False,
                    ok=tuple(range(100, 600)),
                )
        except TimeoutError:
            return {
                "ok": False,
                "proxy": mask_proxy(proxy),
                "error": f"no answer within {limit:g} s",
            }
        except UpstreamFailure as f:
            return {"ok": False, "proxy": mask_proxy(proxy), "error": reason_of(f)}
        except Exception as exc:  # a broken SOCKS URL raises from aiohttp-socks itself
            return {
                "ok": False,
                "proxy": mask_proxy(proxy),
                "error": f"{type(exc).__name__}: {exc}",
            }
        return {
            "ok": True,
            "proxy": mask_proxy(proxy),
            "latency_ms": round((time.monotonic() - start) * 1000, 1),
        }

    # -- import / export ---------------------------------------------------------------------

    async def import_items(self, items: list[ImportItem]) -> dict[str, Any]:
        """Upsert every item by email; returns one result per line, so a bad line loses nothing."""
        results: dict[int, dict[str, Any]] = {}
        claimed: dict[str, int] = {}
        seen: dict[str, int] = {}
        todo: list[ImportItem] = []
        for item in items:
            res: dict[str, Any] = {
                "line": item.line,
                "kind": item.kind or None,
                "email": item.email,
                "result": "error",
                "message": "",
                "id": None,
            }
            results[item.line] = res
            if item.error:
                res["message"] = item.error
                continue
            cred = item.credential
            if cred in seen:
                res.update(result="duplicate", message=f"same credential as line {seen[cred]}")
                continue
            seen[cred] = item.line
            email = item.email
            if item.at:
                with suppress(ValueError):
                    email = jwt_email(decode_jwt(item.at)) or email
            if email:
                res["email"] = email
                owner = claimed.setdefault(email.lower(), item.line)
                if owner != item.line:
                    res.update(
                        result="duplicate", message=f"same account ({email}) as line {owner}"
                    )
                    continue
            todo.append(item)

        sem = asyncio.Semaphore(max(1, self._settings.current.pool.test_concurrency))

        async def one(item: ImportItem) -> None:
            res = results[item.line]

            def claim(email: str) -> None:
                res["email"] = email
                owner = claimed.setdefault(email.lower(), item.line)
                if owner != item.line:
                    raise _Duplicate(owner, email)

            async with sem:
                try:
                    row, created, warnings = await self._add(
                        at=item.at,
                        st=item.st,
                        rt=item.rt,
                        client_id=item.client_id,
                        options=item.options,
                        email_hint=item.email,
                        claim=claim,
                        disabled_reason=None if item.active else "inactive in the imported file",
                    )
                except _Duplicate as d:
                    res.update(
                        result="duplicate", message=f"same account ({d.email}) as line {d.line}"
                    )
                except ApiError as exc:
                    res["message"] = exc.message
                except Exception as exc:  # one line's surprise must not lose the others
                    log.exception("import line %d failed", item.line)
                    res["message"] = f"internal error: {type(exc).__name__}"
                else:
                    res.update(
                        result="created" if created else "updated",
                        id=row["id"],
                        email=row.get("email"),
                        message="; ".join(warnings),
                    )

        await asyncio.gather(*(one(i) for i in todo))
        ordered = [results[i.line] for i in items]
        summary = {k: 0 for k in ("created", "updated", "duplicate", "error")}
        for r in ordered:
            summary[r["result"]] += 1
        log.info("import: %s", ", ".join(f"{v} {k}" for k, v in summary.items()))
        return {"results": ordered, "summary": summary}

    async def import_text(self, text: str) -> dict[str, Any]:
        return await self.import_items(parse_text(text))

    async def import_json(self, data: Any) -> dict[str, Any]:
        return await self.import_items(parse_json(data))

    async def export(self, fmt: str = "json") -> list[dict[str, Any]] | str:
        """Every token with FULL secrets (callers must hold an admin session)."""
        rows = await self._store.fetchall("SELECT * FROM tokens ORDER BY id")
        if fmt == "text":
            # One credential per line, the one that lives longest and does not rotate first:
            # ST, else RT, else AT. parse_text() reads this back.
            lines = [
                r.get("session_token") or r.get("refresh_token") or r["access_token"] for r in rows
            ]
            return "".join(f"{line}\n" for line in lines)
        if fmt != "json":
            raise BadRequestError("'format' must be json or text", param="format")
        return [
            {
                "email": r.get("email"),
                "access_token": r["access_token"],
                "session_token": r.get("session_token") or None,
                "refresh_token": r.get("refresh_token") or None,
                "is_active": r["status"] != "disabled",
                "image_enabled": bool(r.get("image_enabled")),
                "video_enabled": bool(r.get("video_enabled")),
                "image_concurrency": r.get("image_concurrency"),
                "video_concurrency": r.get("video_concurrency"),
                "remark": r.get("remark") or "",
                "proxy": r.get("proxy") or "",
                "client_id": r.get("client_id"),
            }
            for r in rows
        ]

    # -- views -------------------------------------------------------------------------------

    def view(self, token_id: int) -> dict[str, Any]:
        """One token as listings show it: no secret in full, live busy counts and limits."""
        t = self._pool.state(token_id)
        r = t.row
        defaults = self._settings.current.pool
        now = time.time()
        return {
            "id": t.id,
            "email": r.get("email"),
            "name": r.get("name") or "",
            "username": r.get("username") or "",
            "access_token": mask(r.get("access_token")),
            "session_token": mask(r.get("session_token")),
            "refresh_token": mask(r.get("refresh_token")),
            "has_session_token": bool(r.get("session_token")),
            "has_refresh_token": bool(r.get("refresh_token")),
            "client_id": r.get("client_id"),
            "at_expires": r.get("at_expires"),
            **self._status(r, now),
            "is_active": r["status"] != "disabled",
            "available": {k: self._availability(t, k, now) for k in ("image", "video")},
            "cooldown_until": r.get("cooldown_until"),
            "cooldown_reason": r.get("cooldown_reason") or "",
            "cooldown_level": r.get("cooldown_level") or 0,
            "quota_remaining": r.get("quota_remaining"),
            "quota_resets_at": r.get("quota_resets_at"),
            "plan_type": r.get("plan_type") or "",
            "plan_title": r.get("plan_title") or "",
            "subscription_end": r.get("subscription_end") or "",
            "sora2_supported": bool(r.get("sora2_supported")),
            "sora2_invite_code": r.get("sora2_invite_code") or "",
            "sora2_redeemed": r.get("sora2_redeemed") or 0,
            "sora2_total": r.get("sora2_total") or 0,
            "image_enabled": bool(r.get("image_enabled")),
            "video_enabled": bool(r.get("video_enabled")),
            "image_concurrency": r.get("image_concurrency"),
            "video_concurrency": r.get("video_concurrency"),
            "limits": {k: t.limit(k, defaults) for k in ("image", "video")},
            "busy": dict(t.busy),
            "image_count": r.get("image_count") or 0,
            "video_count": r.get("video_count") or 0,
            "error_count": r.get("error_count") or 0,
            "consecutive_errors": r.get("consecutive_errors") or 0,
            "last_used_at": r.get("last_used_at"),
            "last_error": r.get("last_error") or "",
            "last_error_at": r.get("last_error_at"),
            # The last refresh failed (and why); the token serves on while its AT lives.
            "refresh_error": r.get("refresh_error") or "",
            "refresh_error_at": r.get("refresh_error_at"),
            "proxy": mask_proxy(r.get("proxy")),
            "remark": r.get("remark") or "",
            "created_at": r.get("created_at"),
            "updated_at": r.get("updated_at"),
        }

    def _status(self, r: Row, now: float) -> dict[str, Any]:
        """The stored status, except that an AT past its expiry shows as expired right away."""
        expires = r.get("at_expires")
        if r["status"] == "active" and expires and expires <= now:
            renew = r.get("session_token") or r.get("refresh_token")
            if renew and self._settings.current.pool.refresh_enabled:
                then = "the refresh task will renew it"
            else:
                then = "add a fresh one" if not renew else "refresh it (auto refresh is off)"
            if r.get("refresh_error"):
                then = f"the last refresh failed ({r['refresh_error']}); {then}"
            return {
                "status": "expired",
                "status_reason": f"The access token expired at {clock_time(expires)}; {then}",
                "status_at": expires,
            }
        return {
            "status": r["status"],
            "status_reason": r.get("status_reason") or "",
            "status_at": r.get("status_at"),
        }

    def _availability(self, t: Any, kind: str, now: float) -> str:
        word = t.ineligible(kind, now)
        if word:
            return str(word)
        limit = t.limit(kind, self._settings.current.pool)
        return "busy" if limit and t.busy[kind] >= limit else "available"

    def views(self) -> list[dict[str, Any]]:
        return [self.view(t.id) for t in self._pool.tokens()]


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


def _replace_rt(old: str, new: str, extra: Mapping[str, Any] | None = None) -> Change:
    """Store a rotated refresh token, unless the row holds another one by now (re-added)."""

    def change(row: Row) -> dict[str, Any]:
        if row.get("refresh_token") != old:
            return {}
        return {"refresh_token": new, **(extra or {})}

    return change


def _not_activated(f: UpstreamFailure) -> bool:
    """invite/mine's "account not activated for Sora 2": a 401 whose message says Unauthorized."""
    return (
        f.status == 401
        and "unauthorized" in f.message.lower()
        and f.code not in ("token_invalidated", "token_expired")
    )


def _error_for(f: UpstreamFailure, message: str, param: str | None = None) -> ApiError:
    """400 when the credential or request is at fault, 502 when the upstream is."""
    if f.kind in _CREDENTIAL_KINDS or f.kind in _REFUSED_KINDS:
        return BadRequestError(message, param=param, code=f.kind.value)
    return UpstreamError(message, param=param, code=f.kind.value)


async def tokens_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the pool): the TokenManager and its background refresh task."""
    manager = TokenManager(app[keys.SETTINGS], app[keys.STORE], app[keys.CLIENT], app[keys.POOL])
    app[keys.TOKENS] = manager
    task = asyncio.create_task(manager.run_refresher(), name="sora2api.token-refresher")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    await manager.close()
