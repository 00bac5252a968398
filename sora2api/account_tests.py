"""Test one account or all: Sora tokens through their probe, other providers through onboard()."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import ClientSession

from .account_rows import account_of, json_list, onboarded_values, scrub, step_of
from .errors import ApiError, NotFoundError
from .pool import TokenPool
from .providers.registry import ProviderRegistry
from .providers.sora.account import SoraAccounts
from .providers.sora.probe import CREDENTIAL_KINDS, reason_of
from .settings import Settings
from .transitions import probed, reacted, rejected
from .upstream.errors import UpstreamFailure

log = logging.getLogger(__name__)

# Reactions a failed test applies as a job's failure would: the account waits, it is not bad.
_WAIT_REACTIONS = frozenset({"cooldown", "quota"})


class AccountTests:
    """Checks credentials against their upstream and writes the verdict through the pool."""

    def __init__(
        self,
        settings: Settings,
        pool: TokenPool,
        sora: SoraAccounts,
        http: ClientSession,
        providers: ProviderRegistry,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._sora = sora
        self._http = http
        self._providers = providers

    async def test(self, token_id: int) -> dict[str, Any]:
        """Test one account; the answer says ok, the status after it and why."""
        if self._pool.state(token_id).token.provider == "sora":
            return await self._sora.test(token_id)
        return await self._test_provider(token_id)

    async def _test_provider(self, token_id: int) -> dict[str, Any]:
        row = self._pool.state(token_id).token
        try:
            provider = self._providers.provider_for(row.provider)
        except ApiError as exc:
            return self._result(token_id, ok=False, reason=exc.message)
        key = row.access_token
        try:
            info = await provider.onboard(self._http, account_of(row))
        except UpstreamFailure as f:
            reason = scrub(f"Test failed at step '{step_of(f)}': {reason_of(f)}", key)
            now = time.time()
            if f.kind in CREDENTIAL_KINDS:
                await self._pool.transition(token_id, rejected(key, f.kind, reason, now))
            elif f.token_reaction in _WAIT_REACTIONS:
                # A 429 says "not now", not "bad key": the account cools down and stays active.
                cfg = self._settings.current.pool
                await self._pool.transition(token_id, reacted(f, cfg, now, key))
            else:
                await self._pool.update_row(
                    token_id, {"last_error": reason[:500], "last_error_at": now}
                )
            log.info("token %d test failed: %s", token_id, reason)
            return self._result(token_id, ok=False, reason=reason)
        values = {**onboarded_values(info), "consecutive_errors": 0, "last_error": ""}
        values["last_error_at"] = None
        await self._pool.transition(token_id, probed(key, values, time.time()))
        return self._result(token_id, ok=True)

    def _result(self, token_id: int, *, ok: bool, reason: str = "") -> dict[str, Any]:
        r = self._pool.state(token_id).token
        return {
            "id": token_id,
            "ok": ok,
            "provider": r.provider,
            "status": r.status,
            "reason": reason or r.status_reason,
            "served_models": json_list(r.served_models) or [],
            "cooldown_until": r.cooldown_until,
        }

    async def test_all(self) -> list[dict[str, Any]]:
        """Test every account, `pool.test_concurrency` at a time."""
        sem = asyncio.Semaphore(max(1, self._settings.current.pool.test_concurrency))

        async def one(token_id: int) -> dict[str, Any]:
            async with sem:
                try:
                    return await self.test(token_id)
                except NotFoundError:  # deleted meanwhile
                    return {"id": token_id, "ok": False, "reason": "deleted during the test"}

        ids = [t.id for t in self._pool.tokens()]
        return list(await asyncio.gather(*(one(i) for i in ids)))
