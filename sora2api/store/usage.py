"""Usage queries: what a key has running (jobs table) and what it spent (the usage ledger, which
a trigger fills when a job ends; see migration 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .base import StoreBase

STATES = ("completed", "failed", "cancelled")
GROUPS = {
    # Days in UTC: the per-day caps reset at 00:00 UTC too.
    "day": "strftime('%Y-%m-%d', finished_at, 'unixepoch')",
    "model": "model",
    "provider": "provider",
}


@dataclass(frozen=True, slots=True)
class Amount:
    """Jobs and what they measured."""

    jobs: int = 0
    video_seconds: float = 0.0
    images: int = 0


def _bucket() -> dict[str, Any]:
    return {"jobs": 0, "video_seconds": 0.0, "images": 0, "upstream_usage": {}}


def _add_usage(into: dict[str, Any], usage: Any) -> None:
    """Sum the numbers of an upstream usage object into `into` (nested objects too)."""
    if not isinstance(usage, dict):
        return
    for name, value in usage.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            into[name] = into.get(name, 0) + value
        elif isinstance(value, dict):
            _add_usage(into.setdefault(name, {}), value)


class Usage:
    """Counting queries for the limits and the usage report."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def running(self, key_id: int) -> Amount:
        """The key's queued and running jobs, with what they will measure if they complete."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(video_seconds), 0) AS s,"
            " COALESCE(SUM(images), 0) AS i FROM jobs"
            " WHERE key_id = ? AND status IN ('queued', 'in_progress')",
            (key_id,),
        )
        assert row is not None
        return Amount(int(row["n"]), float(row["s"]), int(row["i"]))

    async def completed_since(self, key_id: int, since: float) -> Amount:
        """What the key's jobs completed since `since` measured: only completed jobs count."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(video_seconds), 0) AS s,"
            " COALESCE(SUM(images), 0) AS i FROM usage"
            " WHERE key_id = ? AND finished_at >= ? AND state = 'completed'",
            (key_id, since),
        )
        assert row is not None
        return Amount(int(row["n"]), float(row["s"]), int(row["i"]))

    async def has_key(self, key_id: int) -> bool:
        """Whether any ended job of this key is in the ledger (its key may be deleted since)."""
        row = await self._db.fetchone(
            "SELECT 1 AS x FROM usage WHERE key_id = ? LIMIT 1", (key_id,)
        )
        return row is not None

    async def report(
        self, key_id: int | None, start: float | None, end: float | None, group_by: str
    ) -> dict[str, Any]:
        """Totals per final state and per group (day, model or provider), each bucket holding
        jobs, video_seconds, images and the summed upstream_usage."""
        where: list[str] = ["1 = 1"]
        params: list[float] = []
        if key_id is not None:
            where.append("key_id = ?")
            params.append(key_id)
        if start is not None:
            where.append("finished_at >= ?")
            params.append(start)
        if end is not None:
            where.append("finished_at < ?")
            params.append(end)
        group = GROUPS[group_by]
        rows = await self._db.fetchall(
            f"SELECT {group} AS g, state, COUNT(*) AS n, COALESCE(SUM(video_seconds), 0) AS s,"
            f" COALESCE(SUM(images), 0) AS i FROM usage WHERE {' AND '.join(where)}"
            " GROUP BY g, state ORDER BY g",
            params,
        )
        totals = {state: _bucket() for state in STATES}
        groups: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["state"] not in totals:
                continue
            bucket = groups.setdefault(str(r["g"]), {s: _bucket() for s in STATES})[r["state"]]
            for target in (bucket, totals[r["state"]]):
                target["jobs"] += int(r["n"])
                target["video_seconds"] += float(r["s"])
                target["images"] += int(r["i"])
        # The upstream's own figures (Ark tokens, Gemini usage) are JSON objects: summed here.
        usages = await self._db.fetchall(
            f"SELECT {group} AS g, state, upstream_usage FROM usage"
            f" WHERE {' AND '.join(where)} AND upstream_usage IS NOT NULL",
            params,
        )
        for r in usages:
            if r["state"] not in totals:
                continue
            usage = orjson.loads(r["upstream_usage"])
            _add_usage(totals[r["state"]]["upstream_usage"], usage)
            _add_usage(groups[str(r["g"])][r["state"]]["upstream_usage"], usage)
        return {
            "totals": totals,
            "groups": [{"group": g, **buckets} for g, buckets in groups.items()],
        }
