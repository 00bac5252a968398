"""Counts for the stats routes: jobs per (status, kind), in all and since a moment."""

from __future__ import annotations

from dataclasses import dataclass

from .base import StoreBase


@dataclass(frozen=True, slots=True)
class JobCount:
    """How many jobs of a kind are in a status: in all, and created since the day began."""

    status: str
    kind: str
    n: int
    today: int


@dataclass(frozen=True, slots=True)
class ModelCount:
    """How many stored jobs of a kind, provider and model are in a status (for /metrics)."""

    status: str
    kind: str
    provider: str
    model: str
    n: int


class Stats:
    """Read-only counting queries over the jobs table."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def job_counts(self, today: float) -> list[JobCount]:
        """Every non-empty (status, kind) with its total and its count since `today`."""
        # Totals from job_counts (kept by triggers: a few rows, however many jobs there are),
        # today's counts from the jobs(created_at, status, kind) index: neither reads the whole
        # table.
        rows = await self._db.fetchall("SELECT status, kind, n FROM job_counts WHERE n > 0")
        recent = await self._db.fetchall(
            # Named: without statistics the planner would walk jobs(status, ...) for the GROUP BY.
            "SELECT status, kind, COUNT(*) AS n FROM jobs INDEXED BY jobs_created"
            " WHERE created_at >= ? GROUP BY status, kind",
            (today,),
        )
        today_n = {(r["status"], r["kind"]): int(r["n"]) for r in recent}
        return [
            JobCount(
                str(r["status"]),
                str(r["kind"]),
                int(r["n"]),
                today_n.get((r["status"], r["kind"]), 0),
            )
            for r in rows
        ]

    async def job_model_counts(self) -> list[ModelCount]:
        """Every non-empty (status, kind, provider, model) with its count, from the trigger-kept
        job_model_counts: a few rows however many jobs there are."""
        rows = await self._db.fetchall(
            "SELECT status, kind, provider, model, n FROM job_model_counts WHERE n > 0"
        )
        return [
            ModelCount(
                str(r["status"]), str(r["kind"]), str(r["provider"]), str(r["model"]), int(r["n"])
            )
            for r in rows
        ]
