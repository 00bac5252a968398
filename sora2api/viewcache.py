"""The answers of GET /v1/videos/{id} and /v1/images/{id} for finished jobs, kept ready to send.

SDKs and gateways poll these routes every few seconds, long after a job has finished. A finished
job's answer no longer changes, so it is built once (one database read, JSON parsing, a stat of
the cached file) and then served from here. An entry is dropped when its job row changes or goes
(JobEngine calls forget), when the settings it was built under change (media_ttl and public_url
are in the answer), and once the cached file it links to expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# The statuses a job never leaves: only their answers are kept (and only their rows pruned).
FINAL = frozenset(("completed", "failed", "cancelled"))
# Jobs whose answers are kept; beyond this the oldest is dropped (a few hundred bytes each).
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class View:
    """One ready answer: the body, the settings object it was built under, its end of validity."""

    body: bytes
    built_under: object
    # Epoch seconds after which the answer is stale (its file expired), None for never.
    valid_until: float | None


class ViewCache:
    """Finished job views by job id, then by variant (the route and its format)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._views: dict[str, dict[str, View]] = {}
        self._max = max_entries
        self.hits = 0
        # Bumped by every forget: an answer built from a row read before a forget is not stored
        # (the row may have changed or gone while the answer was being built).
        self.epoch = 0

    def get(self, job_id: str, variant: str, settings: object) -> bytes | None:
        """The ready body, or None when there is none or it no longer holds."""
        views = self._views.get(job_id)
        view = views.get(variant) if views is not None else None
        if view is None:
            return None
        if view.built_under is not settings or (
            view.valid_until is not None and view.valid_until <= time.time()
        ):
            self._views.pop(job_id, None)
            return None
        self.hits += 1
        return view.body

    def put(
        self,
        job_id: str,
        variant: str,
        body: bytes,
        settings: object,
        valid_until: float | None,
        epoch: int,
    ) -> None:
        """Keep an answer built from a row read when `epoch` was current."""
        if epoch != self.epoch:
            return
        views = self._views.get(job_id)
        if views is None:
            if len(self._views) >= self._max:
                # Dicts keep insertion order: drop the oldest job's entries.
                del self._views[next(iter(self._views))]
            views = self._views[job_id] = {}
        views[variant] = View(body, settings, valid_until)

    def forget(self, job_id: str) -> None:
        """The job's row changed or was deleted: drop every answer built from it."""
        self.epoch += 1
        self._views.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._views)
