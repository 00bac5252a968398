"""The webhook_deliveries table (migration 9): the outbox of webhook events. Rows are written by
the jobs_webhooks trigger when a job ends, and moved by the outbox after every attempt."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from .base import Row, StoreBase

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One webhook delivery: one event for one destination URL, with its attempts so far."""

    id: str  # the Standard Webhooks message id (webhook-id), the same on every retry
    job_id: str
    key_id: int | None
    url: str
    event: str  # video.completed, image.failed, ...
    status: str
    attempts: int
    created_at: float
    last_status: int | None = None
    last_error: str | None = None
    next_at: float | None = None
    last_at: float | None = None
    delivered_at: float | None = None

    @classmethod
    def of(cls, row: Row) -> DeliveryRow:
        return cls(**{f: row[f] for f in _FIELDS if f in row})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = tuple(f.name for f in fields(DeliveryRow))


_NOT_BUSY = (
    "id NOT IN (SELECT value FROM json_each(?)) AND url NOT IN (SELECT value FROM json_each(?))"
)


def _busy(ids: tuple[str, ...], urls: tuple[str, ...]) -> tuple[str, str]:
    return orjson.dumps(list(ids)).decode(), orjson.dumps(list(urls)).decode()


def _rows(rows: Iterable[Row]) -> list[DeliveryRow]:
    return [DeliveryRow.of(r) for r in rows]


class Webhooks:
    """Queries of webhook_deliveries."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def get(self, delivery_id: str) -> DeliveryRow | None:
        row = await self._db.fetchone(
            "SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,)
        )
        return DeliveryRow.of(row) if row is not None else None

    async def due(
        self,
        now: float,
        limit: int,
        busy_ids: tuple[str, ...] = (),
        busy_urls: tuple[str, ...] = (),
    ) -> list[DeliveryRow]:
        """Pending deliveries whose next attempt is due, oldest first, leaving out those being
        sent (`busy_ids`) and those to a URL that has one being sent (`busy_urls`)."""
        return _rows(
            await self._db.fetchall(
                "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_at <= ? "
                f"AND {_NOT_BUSY} ORDER BY next_at, id LIMIT ?",
                (now, *_busy(busy_ids, busy_urls), limit),
            )
        )

    async def next_due(
        self, busy_ids: tuple[str, ...] = (), busy_urls: tuple[str, ...] = ()
    ) -> float | None:
        """When the earliest pending delivery that is not busy (as in due()) is due; None when
        there is none (a busy one's end wakes the sender anyway)."""
        row = await self._db.fetchone(
            "SELECT MIN(next_at) AS t FROM webhook_deliveries WHERE status = 'pending' "
            f"AND {_NOT_BUSY}",
            _busy(busy_ids, busy_urls),
        )
        return float(row["t"]) if row and row["t"] is not None else None

    async def backlog(self) -> int:
        """Deliveries not yet delivered nor given up."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'"
        )
        return int(row["n"]) if row else 0

    async def attempted(
        self,
        delivery_id: str,
        *,
        status: str,
        at: float,
        http_status: int | None,
        error: str | None,
        next_at: float | None,
    ) -> None:
        """Record one attempt: its answer (or failure) and what comes next."""
        await self._db.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?, last_at = ?, "
            "last_status = ?, last_error = ?, next_at = ?, delivered_at = ? WHERE id = ?",
            (
                status,
                at,
                http_status,
                error,
                next_at,
                at if status == DELIVERED else None,
                delivery_id,
            ),
        )

    async def page(
        self,
        *,
        key_id: int | None = None,
        status: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
        where: list[str] = []
        params: list[Any] = []
        if key_id is not None:
            where.append("key_id = ?")
            params.append(key_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if before is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend(before)
        sql = "SELECT * FROM webhook_deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        return _rows(await self._db.fetchall(sql, (*params, limit)))

    async def prune(self, before: float) -> int:
        """Forget finished deliveries created before `before`."""
        return await self._db.execute(
            "DELETE FROM webhook_deliveries WHERE status != 'pending' AND created_at < ?",
            (before,),
        )
