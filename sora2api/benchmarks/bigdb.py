"""A large database for the bench: finished jobs and request-log rows spread over past weeks.

Written with the standard sqlite3 module (synchronous, one transaction per table) through the
real migrations, so the server opens it as it would open a database it had grown itself.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..store.migrations import MIGRATIONS

# Finished states only: a job left running would be resumed against the simulator at start-up.
_STATUSES = ("completed",) * 8 + ("failed", "cancelled")
_KINDS = ("video", "video", "image", "character")
_PATHS = ("/v1/videos/{id}", "/v1/chat/completions", "/v1/images/generations", "/v1/models")


def _migrate(conn: sqlite3.Connection) -> None:
    for number, script in enumerate(MIGRATIONS, start=1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")


def _jobs(count: int, now: float, days: float, rng: random.Random) -> Iterator[tuple[object, ...]]:
    for n in range(count):
        created = now - rng.random() * days * 86400
        kind = rng.choice(_KINDS)
        status = rng.choice(_STATUSES)
        result = '{"url": "http://127.0.0.1/tmp/x.mp4"}' if status == "completed" else None
        yield (
            f"bench_{n:08d}",
            kind,
            "sora-video-10s" if kind == "video" else "sora-image",
            '{"prompt": "a bench job"}',
            status,
            created,
            "videos",
            "a bench job",
            100.0 if status == "completed" else 0.0,
            result,
            None if status == "completed" else status,
            created + 60,
            created + 60,
        )


def _logs(count: int, now: float, days: float, rng: random.Random) -> Iterator[tuple[object, ...]]:
    # Rows are written in time order, as the server appends them.
    start = now - days * 86400
    step = days * 86400 / max(count, 1)
    for n in range(count):
        status = 200 if rng.random() < 0.95 else rng.choice((400, 401, 404, 502))
        yield (start + n * step, "GET", rng.choice(_PATHS), status, 1.5, "…abcd", "", "")


def build(path: Path, *, jobs: int, logs: int, now: float, days: float = 28.0) -> None:
    """Create `path` with the current schema, `jobs` finished jobs and `logs` request-log rows,
    all created within the last `days` days (inside the default retention)."""
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        _migrate(conn)
        with conn:
            conn.executemany(
                "INSERT INTO jobs (id, kind, model, request, status, created_at, api, prompt,"
                " progress, result, error_code, completed_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _jobs(jobs, now, days, rng),
            )
        with conn:
            conn.executemany(
                "INSERT INTO request_logs (ts, method, path, status, duration_ms, key_hint,"
                " model, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _logs(logs, now, days, rng),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
