"""Bounded growth: finished jobs, deleted-character records and request-log rows past their
[storage] limits are deleted by a background task, in small batches, never at start-up's expense.

A pass runs right after start-up (as a task: the server answers meanwhile) and then every few
minutes. A job that is not finished is never pruned, whatever its age: its row is what a restart
resumes from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .config import StorageConfig
from .settings import Settings
from .store import Store
from .viewcache import FINAL

log = logging.getLogger(__name__)

# Seconds a job stays after it finished, whatever the bounds: its client gets time to collect it.
FINISHED_GRACE = 3600.0
# Seconds between two retention passes.
INTERVAL = 300.0
# Rows per DELETE statement (see Store.delete_batched).
BATCH = 2000


def _cutoff(now: float, days: int, nth_newest: float | None) -> float | None:
    """The created_at below which rows go: the age bound or the count bound, the later one."""
    bounds = [b for b in (now - days * 86400 if days else None, nth_newest) if b is not None]
    return max(bounds) if bounds else None


async def prune_jobs(
    store: Store, cfg: StorageConfig, now: float, forget: Callable[[str], None]
) -> int:
    """Delete finished jobs older than job_max_days or beyond the newest job_max_rows, once
    they have been finished for FINISHED_GRACE seconds."""
    jobs = store.jobs
    nth = None
    # Counted over every job, running ones too (those are kept anyway).
    if cfg.job_max_rows and await jobs.total() > cfg.job_max_rows:
        nth = await jobs.nth_newest(cfg.job_max_rows)
    cutoff = _cutoff(now, cfg.job_max_days, nth)
    if cutoff is None:
        return 0
    return await jobs.delete_finished(cutoff, now - FINISHED_GRACE, FINAL, BATCH, forget)


async def prune_characters(store: Store, cfg: StorageConfig, now: float) -> int:
    """Delete records of deleted characters older than character_max_days or beyond the newest
    character_max_rows. A live character's row is kept: it is the panel's only handle on it."""
    nth = None
    if cfg.character_max_rows:
        nth = await store.characters.nth_newest_deleted(cfg.character_max_rows)
    cutoff = _cutoff(now, cfg.character_max_days, nth)
    if cutoff is None:
        return 0
    return await store.characters.delete_deleted_before(cutoff, BATCH)


class Retention:
    """One pass over the three tables, and the background task that repeats it."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        prune_log: Callable[[float], Awaitable[int]],
        forget_job: Callable[[str], None],
    ) -> None:
        self._store = store
        self._settings = settings
        self._prune_log = prune_log
        self._forget_job = forget_job
        self.passes = 0
        # Set after every pass (tests and the bench wait on it rather than on a clock).
        self.passed = asyncio.Event()

    async def prune(self, now: float | None = None) -> dict[str, int]:
        """One pass; returns the rows deleted per table."""
        now = time.time() if now is None else now
        cfg = self._settings.current.storage
        out = {
            "request_logs": await self._prune_log(now),
            "jobs": await prune_jobs(self._store, cfg, now, self._forget_job),
            "characters": await prune_characters(self._store, cfg, now),
        }
        self.passes += 1
        self.passed.set()
        if any(out.values()):
            log.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in out.items() if n))
        return out

    async def run(self) -> None:
        """The background task: a pass now, then one every INTERVAL seconds."""
        while True:
            try:
                await self.prune()
            except Exception:
                # A locked or full database must not stop the service; the next pass retries.
                log.exception("retention pass failed")
            await asyncio.sleep(INTERVAL)


RETENTION = web.AppKey("sora2api.retention", Retention)
