"""The jobs table: the engine's row per generation, the public and panel listings, retention."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from .base import Row, StoreBase

_WITH_EMAIL = (
    "SELECT j.*, t.email AS token_email FROM jobs j LEFT JOIN tokens t ON t.id = j.token_id"
)


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as stored (migrations 1, 2 and 6); token_email only where a listing joins it."""

    id: str
    kind: str
    model: str
    request: str
    status: str
    created_at: float
    api: str = "chat"
    prompt: str = ""
    progress: float = 0.0
    stage: str = ""
    token_id: int | None = None
    upstream_task_id: str | None = None
    state: str = "{}"
    result: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    remixed_from: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float | None = None
    phase: str = ""
    cleanup: str | None = None
    # Migration 8 (p12-keys): the created API key that asked (None: the bootstrap key or the
    # panel), and what the job counts for in usage (metering.py).
    key_id: int | None = None
    provider: str = "sora"
    video_seconds: float = 0.0
    images: int = 0
    upstream_usage: str | None = None
    # Migration 9 (p12-webhooks): the create's own webhook_url, delivered besides the key's.
    webhook_url: str | None = None
    token_email: str | None = None

    @classmethod
    def of(cls, row: Row) -> JobRow:
        """From a database row; columns this class does not know (a newer schema) are left out."""
        return cls(**{f: row[f] for f in _FIELDS if f in row})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def columns(self) -> dict[str, Any]:
        """The stored columns (without the joined token_email)."""
        out = asdict(self)
        del out["token_email"]
        return out


_FIELDS = tuple(f.name for f in fields(JobRow))


def _rows(rows: Iterable[Row]) -> list[JobRow]:
    return [JobRow.of(r) for r in rows]


class Jobs:
    """Queries of the jobs table. Writers call JobEngine.job_changed after each write or delete."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    # -- the engine's own -----------------------------------------------------------------

    async def insert(self, row: JobRow) -> None:
        await self._db.insert("jobs", row.columns())

    async def get(self, job_id: str) -> JobRow | None:
        row = await self._db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return JobRow.of(row) if row is not None else None

    async def get_of_kind(self, job_id: str, kind: str) -> JobRow | None:
        row = await self._db.fetchone(
            "SELECT * FROM jobs WHERE id = ? AND kind = ?", (job_id, kind)
        )
        return JobRow.of(row) if row is not None else None

    async def update(self, job_id: str, values: Mapping[str, Any]) -> int:
        """Write these columns of one job in one statement; returns the rows changed."""
        return await self._db.update("jobs", "id", job_id, values)

    async def delete(self, job_id: str) -> int:
        return await self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    async def owned_task_ids(self, task_ids: Sequence[str]) -> set[str]:
        """Which of these upstream task ids some job already holds."""
        if not task_ids:
            return set()
        marks = ", ".join("?" for _ in task_ids)
        rows = await self._db.fetchall(
            f"SELECT upstream_task_id FROM jobs WHERE upstream_task_id IN ({marks})", task_ids
        )
        return {str(r["upstream_task_id"]) for r in rows}

    async def of_kind(
        self,
        kind: str,
        *,
        statuses: Sequence[str] | None,
        anchor: tuple[float, str] | None,
        order: str,
        limit: int,
        key_id: int | None = None,
    ) -> list[JobRow]:
        """Up to `limit` jobs of a kind (optionally only these statuses, only one API key's)
        after the (created_at, id) `anchor`, newest first (or oldest with order="asc")."""
        where = "kind = ?"
        params: list[Any] = [kind]
        if key_id is not None:  # the jobs(key_id, kind, created_at, id) index
            where = "key_id = ? AND kind = ?"
            params = [key_id, kind]
        if statuses:
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params += statuses
        if anchor is not None:
            op = "<" if order == "desc" else ">"
            # (created_at, id) is a total order, so rows created in the same instant are not
            # skipped; as a row value it is one range on the jobs(kind, created_at, id) index.
            where += f" AND (created_at, id) {op} (?, ?)"
            params += [anchor[0], anchor[1]]
        direction = "DESC" if order == "desc" else "ASC"
        rows = await self._db.fetchall(
            f"SELECT * FROM jobs WHERE {where} ORDER BY created_at {direction}, id {direction} LIMIT ?",
            (*params, limit),
        )
        return _rows(rows)

    async def ended_with_cleanup(self) -> list[JobRow]:
        """Finished jobs whose recorded side effects are not all undone."""
        return _rows(
            await self._db.fetchall(
                "SELECT * FROM jobs WHERE cleanup IS NOT NULL AND status IN ('completed', 'failed',"
                " 'cancelled')"
            )
        )

    async def running(self) -> list[JobRow]:
        """Jobs not finished, oldest first (what a start-up resumes)."""
        return _rows(
            await self._db.fetchall(
                "SELECT * FROM jobs WHERE status IN ('queued', 'in_progress') ORDER BY created_at"
            )
        )

    # -- the panel and retention ----------------------------------------------------------

    async def page(
        self,
        status: str | None,
        kind: str | None,
        limit: int,
        offset: int,
        active: Sequence[str],
    ) -> list[JobRow]:
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
    ) -> list[JobRow]:
        sql = _WITH_EMAIL
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY j.created_at DESC LIMIT ? OFFSET ?"
        return _rows(await self._db.fetchall(sql, [*params, limit, offset]))

    async def with_email(self, job_id: str) -> JobRow | None:
        """One job with its token's email."""
        row = await self._db.fetchone(_WITH_EMAIL + " WHERE j.id = ?", (job_id,))
        return JobRow.of(row) if row is not None else None

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
