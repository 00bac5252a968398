"""The jobs table as the panel lists it and retention prunes it (the engine's own queries stay
in jobs.py and flows/ until the jobs repository takes them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any

import orjson

from .base import Row, StoreBase

_WITH_EMAIL = (
    "SELECT j.*, t.email AS token_email FROM jobs j LEFT JOIN tokens t ON t.id = j.token_id"
)


class JobReads:
    """Panel listings and retention of jobs. Rows stay dicts until the jobs repository has its
    typed row."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def page(
        self,
        status: str | None,
        kind: str | None,
        limit: int,
        offset: int,
        active: Sequence[str],
    ) -> list[Row]:
        """Jobs with their token's email: running (a status in `active`) first, then the
        others, each newest first. status "active" lists the running ones only."""
        where: list[str] = []
        params: list[Any] = []
        if kind:
            where.append("j.kind = ?")
            params.append(kind)
        if status and status != "active":
            return await self._page([*where, "j.status = ?"], [*params, status], limit, offset)
        # Running jobs first, then the others, each newest first: two queries that each walk an
        # index (one ORDER BY on "is running" sorted the whole table for every page).
        running_sql = f"j.status IN ({', '.join('?' for _ in active)})"
        running = await self._page([*where, running_sql], [*params, *active], limit, offset)
        if status == "active" or len(running) == limit:
            return running
        skipped = offset  # the offset fell inside the running jobs
        if not running and offset:
            count = await self._db.fetchone(
                f"SELECT COUNT(*) AS n FROM jobs j WHERE {' AND '.join([*where, running_sql])}",
                [*params, *active],
            )
            skipped = int(count["n"]) if count else 0
        rest_sql = f"j.status NOT IN ({', '.join('?' for _ in active)})"
        rest = await self._page(
            [*where, rest_sql], [*params, *active], limit - len(running), offset - skipped
        )
        return running + rest

    async def _page(
        self, where: list[str], params: list[Any], limit: int, offset: int
    ) -> list[Row]:
        sql = _WITH_EMAIL
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY j.created_at DESC LIMIT ? OFFSET ?"
        return await self._db.fetchall(sql, [*params, limit, offset])

    async def with_email(self, job_id: str) -> Row | None:
        """One job with its token's email."""
        return await self._db.fetchone(_WITH_EMAIL + " WHERE j.id = ?", (job_id,))

    async def total(self) -> int:
        """Every job, running ones too (from the trigger-kept counts)."""
        row = await self._db.fetchone("SELECT COALESCE(SUM(n), 0) AS n FROM job_counts")
        return int(row["n"]) if row else 0

    async def nth_newest(self, n: int) -> float | None:
        """created_at of the n-th newest job (1-based), or None."""
        row = await self._db.fetchone(
            "SELECT created_at FROM jobs ORDER BY created_at DESC LIMIT 1 OFFSET ?", (n - 1,)
        )
        return float(row["created_at"]) if row else None

    async def delete_finished(
        self,
        created_before: float,
        finished_before: float,
        final: Collection[str],
        batch: int,
        forget: Callable[[str], None],
    ) -> int:
        """Delete jobs in a `final` status created before `created_before` and finished before
        `finished_before`, `batch` per statement; `forget` hears each id deleted."""
        final_sql = "(" + ", ".join(f"'{s}'" for s in sorted(final)) + ")"
        deleted = 0
        while True:
            rows = await self._db.fetchall(
                f"SELECT id FROM jobs WHERE created_at < ? AND status IN {final_sql}"
                " AND COALESCE(completed_at, updated_at, created_at) < ? LIMIT ?",
                (created_before, finished_before, batch),
            )
            if not rows:
                return deleted
            ids = [r["id"] for r in rows]
            # The status is checked again in the DELETE itself, though a finished job stays
            # finished.
            deleted += await self._db.execute(
                f"DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
                f" AND status IN {final_sql}",
                (orjson.dumps(ids).decode(),),
            )
            for job_id in ids:
                forget(job_id)
            if len(rows) < batch:
                return deleted
            await asyncio.sleep(0)
