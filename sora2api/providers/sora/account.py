"""The Sora token lifecycle: add (AT, ST or RT), test, activation; renewal is in refresh.py.

The pool (pool.py) owns live state and leasing; this module talks to Sora about a credential and
writes the result back through the pool's one writer, so its in-memory rows never go stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ...credentials import UNSET, as_number, check_options, clock_time, unmistakable_kind
from ...errors import BadRequestError, as_api_error
from ...jwt import jwt_email
from ...mask import mask
from ...pool import TokenPool
from ...settings import Settings
from ...store import Row, Store
from ...transitions import Change, chain, constant, probed, reacted, readded, rejected
from ...upstream.errors import UpstreamFailure
from .client import SoraClient
from .probe import CREDENTIAL_KINDS, Probe, Prober, StepFailure, claims_of, reason_of, result_of
from .refresh import SoraRefresher, require_sora

log = logging.getLogger(__name__)


class SoraAccounts:
    """Every operation on a Sora token's credentials and account data."""

    def __init__(
        self, settings: Settings, store: Store, client: SoraClient, pool: TokenPool
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._pool = pool
        self._prober = Prober(client)
        self.refresher = SoraRefresher(settings, client, pool)
        # Upserts by email must not interleave (two adds of one account would both insert).
        self._write_lock = asyncio.Lock()

    def _row(self, token_id: int) -> Row:
        return self._pool.state(token_id).row

    # -- renewal (refresh.py), named here for the job engine and the routes ------------------

    async def refresh(self, token_id: int) -> dict[str, Any]:
        """New AT from the ST (first) or the RT."""
        return await self.refresher.refresh(token_id)

    async def refresh_quota(self, token_id: int) -> dict[str, Any]:
        """nf/check for one token; the job engine calls it after each video."""
        return await self.refresher.refresh_quota(token_id)

    async def refresh_due(self) -> None:
        """One pass of the background renewal."""
        await self.refresher.refresh_due()

    async def run_refresher(self) -> None:
        """The background renewal loop."""
        await self.refresher.run_refresher()

    async def close(self) -> None:
        """Let in-flight refresh-token exchanges finish (bounded) before shutdown."""
        await self.refresher.close()

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
        row, created, _ = await self.add_credentials(
            # A pasted "Bearer eyJ..." is still the token.
            at=(token or "").strip().removeprefix("Bearer ").strip() or None,
            st=(st or "").strip() or None,
            rt=(rt or "").strip() or None,
            client_id=(client_id or "").strip() or None,
            options=options,
        )
        return row, created

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
        raise as_api_error(last, message=f"{verb} failed {text}", caller_input=True)

    async def add_credentials(
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
            claims = claims_of(at, "token")
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
            claims = claims_of(at, "auth/session" if st else "oauth/token")
        assert claims is not None
        exp = as_number(claims.get("exp"))
        at_expires = exp if exp is not None else (now + expires_in if expires_in else None)
        email = jwt_email(claims) or email_hint
        if claim is not None and email:
            claim(email)
        if "proxy" not in options and email:
            # Re-adding a known account: reach it through the proxy it already has.
            proxy = await self._store.tokens.proxy_of_email(email)
        base: dict[str, Any] = {"access_token": at, "at_expires": at_expires, "updated_at": now}
        if st:
            base["session_token"] = st
        if new_rt or rt:
            base["refresh_token"] = new_rt or rt
        if client_id:
            base["client_id"] = client_id
        try:
            probe = await self._prober.probe(
                at, proxy, billing=True, set_username=True, email=email
            )
        except StepFailure as sf:
            message = f"Adding the token failed at step '{sf.step}': {reason_of(sf.failure)}"
            if new_rt:
                # The caller's refresh token is spent; dropping the rotated one would leave them
                # with nothing. Keep it, with what the failure says about the token: a refused
                # credential marks it, a rate limit or an outage only cools it down.
                f = sf.failure
                verdict = (
                    rejected(at, f.kind, message, now)
                    if f.kind in CREDENTIAL_KINDS
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
            raise as_api_error(sf.failure, message=message, caller_input=True) from None
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
                existing = await self._store.tokens.id_by_email(email)
            else:
                existing = await self._store.tokens.id_by_access_token(at)
            if existing is not None:
                token_id = existing
                await self._pool.transition(token_id, change)
                return token_id, False
            # A new row: the change decides from what a fresh row holds.
            blank: Row = {"access_token": "", "status": "active", "status_reason": ""}
            return await self._pool.insert(change(blank)), True

    # -- testing -----------------------------------------------------------------------------

    async def test(self, token_id: int) -> dict[str, Any]:
        """/me, invite/mine(+bootstrap), nf/check; writes status, Sora-2 fields and quota back."""
        row = dict(self._row(token_id))
        now = time.time()
        try:
            probe = await self._prober.probe(
                str(row["access_token"]),
                row.get("proxy") or None,
                billing=False,
                set_username=False,
                email=row.get("email"),
            )
        except StepFailure as sf:
            f = sf.failure
            reason = f"Test failed at step '{sf.step}': {reason_of(f)}"
            at = str(row["access_token"])
            if f.kind in CREDENTIAL_KINDS:
                await self._pool.transition(token_id, rejected(at, f.kind, reason, time.time()))
            else:
                await self._pool.update_row(
                    token_id, {"last_error": reason[:500], "last_error_at": time.time()}
                )
            log.info("token %d test failed: %s", token_id, reason)
            return result_of(self._pool, token_id, ok=False, reason=reason)
        values = dict(probe.values)
        values["consecutive_errors"] = 0
        values["last_error"] = "; ".join(probe.warnings)[:500]
        values["last_error_at"] = now if probe.warnings else None
        # Decided on the row as it is after the probe: an admin's disable meanwhile stands.
        await self._pool.transition(token_id, probed(str(row["access_token"]), values, time.time()))
        return result_of(self._pool, token_id, ok=True, reason="; ".join(probe.warnings))

    # -- admin actions -----------------------------------------------------------------------

    async def activate(self, token_id: int, invite_code: str) -> dict[str, Any]:
        """Redeem a Sora-2 invite code, then re-read invite/mine and nf/check."""
        code = (invite_code or "").strip()
        if not code:
            raise BadRequestError("'invite_code' is required", param="invite_code")
        row = dict(self._row(token_id))
        require_sora(row, "activation")
        at, proxy = str(row["access_token"]), row.get("proxy") or None
        try:
            res = await self._client.invite_accept(at, code, proxy)
        except UpstreamFailure as f:
            raise as_api_error(
                f,
                message=f"Activation failed: {reason_of(f)}",
                param="invite_code",
                caller_input=True,
            ) from None
        if not isinstance(res, dict) or not (res.get("success") or res.get("already_accepted")):
            raise BadRequestError(
                f"Sora did not accept the invite code: {str(res)[:200]}", param="invite_code"
            )
        p = Probe(email=row.get("email"))
        try:
            if await self._prober.sora2(at, proxy, p):
                await self._prober.quota(at, proxy, p)
        except StepFailure as sf:
            p.warnings.append(f"{sf.step}: {reason_of(sf.failure)}")
        await self._pool.update_row(token_id, p.values)
        return result_of(
            self._pool,
            token_id,
            ok=True,
            reason="; ".join(p.warnings),
            already_accepted=bool(res.get("already_accepted")),
        )
