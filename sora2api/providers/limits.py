"""Per-account poll limits: at most a few polls in flight and a bounded rate per account, so a
hundred jobs on one key do not hammer the upstream (one job polls one task at a time anyway)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# Polls of one account in flight at once, and polls started per second on it.
CONCURRENT = 4
PER_SECOND = 10.0


@dataclass(slots=True)
class _Gate:
    semaphore: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENT))
    next_at: float = 0.0  # loop time of the next free start slot
    users: int = 0


class PollLimits:
    """One gate per account id, alive while some job polls through it."""

    def __init__(self, per_second: float = PER_SECOND) -> None:
        self._spacing = 1.0 / per_second
        self._gates: dict[int, _Gate] = {}

    @asynccontextmanager
    async def slot(self, account_id: int) -> AsyncIterator[None]:
        """Held around one poll: waits for a free slot and the account's next start time."""
        gate = self._gates.get(account_id)
        if gate is None:
            gate = self._gates[account_id] = _Gate()
        gate.users += 1
        try:
            async with gate.semaphore:
                loop = asyncio.get_running_loop()
                now = loop.time()
                start = max(now, gate.next_at)
                gate.next_at = start + self._spacing
                if start > now:
                    await asyncio.sleep(start - now)
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[account_id]
