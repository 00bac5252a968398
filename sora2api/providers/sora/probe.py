"""What Sora's account endpoints say about an access token: /me, billing, invite/mine, nf/check.

Fatal problems raise StepFailure naming the step; the rest become warnings on the Probe.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ...credentials import as_number, quota_values, username_candidates
from ...errors import BadRequestError
from ...jwt import decode_jwt
from ...pool import TokenPool
from ...upstream.errors import Kind, UpstreamFailure
from .client import SoraClient

log = logging.getLogger(__name__)

# Failures that say the credential itself is bad (adding fails with 400, testing marks it).
CREDENTIAL_KINDS = frozenset({Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED, Kind.COUNTRY})


def reason_of(failure: UpstreamFailure) -> str:
    """describe() without the endpoint: callers name the step themselves."""
    return UpstreamFailure(failure.kind, failure.message, status=failure.status).describe()


class StepFailure(Exception):
    """One named step of adding/testing a token failed."""

    def __init__(self, step: str, failure: UpstreamFailure) -> None:
        super().__init__(f"{step}: {failure.message}")
        self.step = step
        self.failure = failure


@dataclass(slots=True)
class Probe:
    """What the account endpoints said: columns to write, plus non-fatal problems."""

    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    email: str | None = None


def claims_of(at: str, source: str) -> dict[str, Any]:
    """The claims of an access token; a 400 saying where it came from when it is no JWT."""
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


def not_activated(f: UpstreamFailure) -> bool:
    """invite/mine's "account not activated for Sora 2": a 401 whose message says Unauthorized."""
    return (
        f.status == 401
        and "unauthorized" in f.message.lower()
        and f.code not in ("token_invalidated", "token_expired")
    )


def result_of(
    pool: TokenPool, token_id: int, *, ok: bool, reason: str = "", **extra: Any
) -> dict[str, Any]:
    """The answer of a test, refresh or activation: the token's state after it."""
    r = pool.state(token_id).row
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


class Prober:
    """The account endpoints' calls for one SoraClient."""

    def __init__(self, client: SoraClient) -> None:
        self._client = client

    async def probe(
        self, at: str, proxy: str | None, *, billing: bool, set_username: bool, email: str | None
    ) -> Probe:
        """/me, billing, invite/mine(+bootstrap), nf/check, username: fatal problems raise
        StepFailure, the rest become warnings."""
        p = Probe(email=email)
        try:
            me = await self._client.me(at, proxy)
        except UpstreamFailure as f:
            raise StepFailure("me", f) from None
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
        supported = await self.sora2(at, proxy, p)
        if supported:
            await self.quota(at, proxy, p)
        if set_username and not username:
            await self._set_username(at, proxy, p)
        return p

    async def _billing(self, at: str, proxy: str | None, p: Probe) -> None:
        try:
            sub = await self._client.subscriptions(at, proxy)
        except UpstreamFailure as f:
            if f.kind in CREDENTIAL_KINDS:
                raise StepFailure("billing/subscriptions", f) from None
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

    async def sora2(self, at: str, proxy: str | None, p: Probe) -> bool:
        """invite/mine; a 401 "Unauthorized" there means "not activated": bootstrap, retry once."""
        try:
            inv = await self._client.invite_mine(at, proxy)
        except UpstreamFailure as f:
            if not not_activated(f):
                if f.kind in CREDENTIAL_KINDS:
                    raise StepFailure("invite/mine", f) from None
                p.values["sora2_supported"] = 0
                p.warnings.append(f"invite/mine: {reason_of(f)} (Sora-2 support unknown)")
                return False
            try:
                await self._client.bootstrap(at, proxy)
                inv = await self._client.invite_mine(at, proxy)
            except UpstreamFailure as f2:
                if f2.kind is Kind.COUNTRY:
                    raise StepFailure("invite/mine", f2) from None
                p.values["sora2_supported"] = 0
                if not not_activated(f2):
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

    async def quota(self, at: str, proxy: str | None, p: Probe) -> None:
        try:
            info = await self._client.nf_check(at, proxy)
        except UpstreamFailure as f:
            if f.kind in CREDENTIAL_KINDS:
                raise StepFailure("nf/check", f) from None
            p.warnings.append(f"nf/check: {reason_of(f)} (quota unknown)")
            return
        p.values.update(quota_values(info, time.time()))

    async def _set_username(self, at: str, proxy: str | None, p: Probe) -> None:
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
