"""The request_logs table and its trigger-kept count (request_log_count, migration 5)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import StoreBase

# One statement per batch with the rows as one JSON array parameter: SQLite unpacks it itself.
_INSERT = (
    "INSERT INTO request_logs"
    " (ts, method, path, status, duration_ms, key_hint, model, job_id, client, count)"
    " SELECT value->>0, value->>1, value->>2, value->>3, round(value->>4, 2), value->>5, value->>6,"
    " value->>7, value->>8, value->>9 FROM json_each(?)"
)


@dataclass(frozen=True, slots=True)
class LogRow:
    """One logged call, with what its job and token say (the listing's join)."""

    id: int
    ts: float
    method: str
    path: str
    status: int
    duration_ms: float
    count: int
    key_hint: str
    model: str
    job_id: str | None
    client: str
    token_id: int | None
    job_status: str | None
    job_error_code: str | None
    job_error: str | None
    token_email: str | None


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Logged calls in all, since the start of today, and those answered with an error."""

    total: int
    today: int
    errors: int


class RequestLogs:
    """Queries of request_logs."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def insert_batch(self, entries_json: str) -> None:
        """Write entries given as one JSON array of 10-item arrays (see reqlog.Entry)."""
        await self._db.execute(_INSERT, (entries_json,))

    async def delete_before(self, ts: float) -> int:
        """Delete rows logged before `ts`, in batches; returns the rows deleted."""
        return await self._db.delete_batched(
            "DELETE FROM request_logs WHERE id IN"
            " (SELECT id FROM request_logs WHERE ts < ? LIMIT ?)",
            (ts,),
        )

    async def keep_newest(self, max_rows: int) -> int:
        """Delete all but the newest `max_rows` rows, in batches; returns the rows deleted."""
        if await self.count() <= max_rows:
            return 0  # under the bound: no need to walk the table to find the cut
        newest_gone = await self._db.fetchone(
            "SELECT id FROM request_logs ORDER BY id DESC LIMIT 1 OFFSET ?", (max_rows,)
        )
        if newest_gone is None:
            return 0
        return await self._db.delete_batched(
            "DELETE FROM request_logs WHERE id IN"
            " (SELECT id FROM request_logs WHERE id <= ? LIMIT ?)",
            (newest_gone["id"],),
        )

    async def count(self) -> int:
        # Kept by triggers: counting a million rows took longer than the page itself.
        row = await self._db.fetchone("SELECT n FROM request_log_count")
        return int(row["n"]) if row else 0

    async def page(self, limit: int, offset: int) -> list[LogRow]:
        """Newest first, joined with the job (outcome, token) and the token (its email)."""
        rows = await self._db.fetchall(
            "SELECT l.id, l.ts, l.method, l.path, l.status, l.duration_ms, l.count, l.key_hint, l.model,"
            " l.job_id, l.client, j.token_id, j.status AS job_status, j.error_code AS job_error_code,"
            " j.error_message AS job_error, t.email AS token_email"
            " FROM request_logs l LEFT JOIN jobs j ON j.id = l.job_id"
            " LEFT JOIN tokens t ON t.id = j.token_id"
            " ORDER BY l.id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [LogRow(**r) for r in rows]

    async def counts(self, today: float) -> RequestCounts:
        """Totals kept by triggers, today's count from the ts index (one scan computing all
        three read every row)."""
        row = await self._db.fetchone(
            "SELECT n AS total, (SELECT COUNT(*) FROM request_logs WHERE ts >= ?) AS today,"
            " errors FROM request_log_count",
            (today,),
        )
        if row is None:
            return RequestCounts(0, 0, 0)
        return RequestCounts(int(row["total"]), int(row["today"]), int(row["errors"]))
