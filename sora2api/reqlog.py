"""The request log: what the service middleware notes of every API call, a batched writer,
retention and the listing.

Recording must cost little on the request path (the bench compares /v1/models against a bare
handler), so the middleware only appends one orjson-encoded row to a buffer; a background task
writes the buffer with a single INSERT a fraction of a second later; the retention task prunes
it with the other tables. Measured on /v1/models under load: about 9 µs per request in all (3 of
them SQLite's), i.e. the server serves about 80 % of what it serves with no request log at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import orjson
from aiohttp import web

from . import keys
from .auth import bearer, client_address, mask, mask_email
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

# Only the API is logged: media downloads, the panel's static files and /health are noise.
LOGGED_PREFIXES = ("/v1/", "/api/")
# Seconds the writer waits after the first pending entry, so one write carries a batch.
_FLUSH_DELAY = 0.25
# Entries kept in memory while the database is slow; beyond this new entries are dropped.
_MAX_PENDING = 10_000
_MAX_PATH = 300
# One statement per batch with the rows as one JSON array parameter: SQLite unpacks it itself.
_INSERT = (
    "INSERT INTO request_logs"
    " (ts, method, path, status, duration_ms, key_hint, model, job_id, client, count)"
    " SELECT value->>0, value->>1, value->>2, value->>3, round(value->>4, 2), value->>5, value->>6,"
    " value->>7, value->>8, value->>9 FROM json_each(?)"
)
# The status noted when the client left before an answer could be sent (nginx's convention).
CLIENT_CLOSED = 499

Entry = tuple[float, str, str, int, float, str, str, str | None, str, int]

# Set on a request by the GET-one routes when they answer a finished job's ready view: such polls
# are counted like model listings (one row per flush per path, key and client), because pollers
# repeat them every few seconds and a row each would cost more than the answer itself.
READY_JOB = web.RequestKey("sora2api.ready_job", str)


class RequestLog:
    """Pending entries, the writer that flushes them, and the queries over the table."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        admin_key: web.RequestKey[Any],
        api_key: Callable[[], str] = lambda: "",
    ) -> None:
        self._store = store
        self._settings = settings
        # Successful model listings since the last flush: written as one row with a count.
        self._listings = 0
        self._listing_ms = 0.0
        # Ready-view polls since the last flush: (path, API key, client, job id) -> [n, ms].
        self._ready: dict[tuple[str, str, str, str], list[Any]] = {}
        self._api_key = api_key
        # The request key holding an admin session (passed in: the route table imports us).
        self._admin_key = admin_key
        # Entries are kept as JSON bytes, not tuples: thousands of live tuples between two flushes
        # kept the garbage collector busy and cost a third of /v1/models throughput under load.
        self._pending = bytearray()
        self._count = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.dropped = 0

    def note(self, request: web.Request, status: int, started: float) -> None:
        """Record one answered request: never the query string, never a full credential."""
        # Most requests store nothing on the request; a missing key costs a KeyError per get().
        session = model = job_id = None
        if len(request):
            ready = request.get(READY_JOB)
            if ready is not None and status == 200:
                self._note_ready(request, ready, started)
                return
            session = request.get(self._admin_key)
            model = request.get(keys.REQ_MODEL)
            job_id = request.get(keys.REQ_JOB_ID)
        self.record(
            (
                time.time(),
                request.method,
                request.path[:_MAX_PATH],
                status,
                (time.perf_counter() - started) * 1000,
                f"admin:{session.username}" if session is not None else mask(bearer(request)),
                model or "",
                job_id,
                client_address(request),
                1,
            )
        )

    def note_listing(self, started: float) -> None:
        """A successful GET /v1/models: counted, and written as one row per flush (a row each
        would cost more than the listing itself, and chat UIs repeat it on every page load)."""
        self._listings += 1
        self._listing_ms += (time.perf_counter() - started) * 1000
        self._wake.set()

    def _note_ready(self, request: web.Request, job_id: str, started: float) -> None:
        key = (
            request.path[:_MAX_PATH],
            bearer(request),
            client_address(request),
            job_id,
        )
        ms = (time.perf_counter() - started) * 1000
        counted = self._ready.get(key)
        if counted is None:
            self._ready[key] = [1, ms]
        else:
            counted[0] += 1
            counted[1] += ms
        self._wake.set()

    def record(self, entry: Entry) -> None:
        if self._count >= _MAX_PENDING:
            self.dropped += 1
            return
        self._pending += orjson.dumps(entry)
        self._pending += b","
        self._count += 1
        self._wake.set()

    async def flush(self) -> None:
        """Write every pending entry now (the listing calls this, so it never lags)."""
        async with self._lock:
            if self._listings:
                n, ms, self._listings, self._listing_ms = self._listings, self._listing_ms, 0, 0.0
                key = mask(self._api_key())
                self.record((time.time(), "GET", "/v1/models", 200, ms / n, key, "", None, "", n))
            ready, self._ready = self._ready, {}
            for (path, key, client, job_id), (n, ms) in ready.items():
                self.record(
                    (time.time(), "GET", path, 200, ms / n, mask(key), "", job_id, client, n)
                )
            batch, self._pending, self._count = self._pending, bytearray(), 0
            if self.dropped:
                log.warning(
                    "request log: %d entries dropped while the database lagged", self.dropped
                )
                self.dropped = 0
            if batch:
                await self._store.execute(_INSERT, ("[" + batch[:-1].decode() + "]",))

    async def prune(self, now: float | None = None) -> int:
        """Apply [storage] log_max_days and log_max_rows in batches; returns the rows deleted."""
        cfg = self._settings.current.storage
        now = time.time() if now is None else now
        deleted = await self._store.delete_batched(
            "DELETE FROM request_logs WHERE id IN"
            " (SELECT id FROM request_logs WHERE ts < ? LIMIT ?)",
            (now - cfg.log_max_days * 86400,),
        )
        count = await self._store.fetchone("SELECT n FROM request_log_count")
        if count is None or count["n"] <= cfg.log_max_rows:
            return deleted  # under the bound: no need to walk the table to find the cut
        newest_gone = await self._store.fetchone(
            "SELECT id FROM request_logs ORDER BY id DESC LIMIT 1 OFFSET ?", (cfg.log_max_rows,)
        )
        if newest_gone is not None:
            deleted += await self._store.delete_batched(
                "DELETE FROM request_logs WHERE id IN"
                " (SELECT id FROM request_logs WHERE id <= ? LIMIT ?)",
                (newest_gone["id"],),
            )
        return deleted

    async def run(self) -> None:
        """The background writer: flush shortly after entries arrive."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(_FLUSH_DELAY)
            try:
                await self.flush()
            except Exception:
                # A full disk must not stop the service; the entries of this batch are lost.
                log.exception("could not write the request log")

    async def list(self, limit: int, offset: int) -> dict[str, Any]:
        """Newest first, joined with the job (outcome, token) and the token (masked email)."""
        await self.flush()
        rows = await self._store.fetchall(
            "SELECT l.id, l.ts, l.method, l.path, l.status, l.duration_ms, l.count, l.key_hint, l.model,"
            " l.job_id, l.client, j.token_id, j.status AS job_status, j.error_code AS job_error_code,"
            " j.error_message AS job_error, t.email AS token_email"
            " FROM request_logs l LEFT JOIN jobs j ON j.id = l.job_id"
            " LEFT JOIN tokens t ON t.id = j.token_id"
            " ORDER BY l.id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        for row in rows:
            row["token_email"] = mask_email(row["token_email"])
        # Kept by triggers: counting a million rows took longer than the page itself.
        total = await self._store.fetchone("SELECT n FROM request_log_count")
        return {"logs": rows, "total": total["n"] if total else 0, "limit": limit, "offset": offset}


REQLOG = web.AppKey("sora2api.reqlog", RequestLog)


async def reqlog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the store): the writer task; a final flush on shutdown. Start-up
    does not wait for pruning: the retention task does it in the background."""

    auth = app[keys.AUTH]
    reqlog = RequestLog(app[keys.STORE], app[keys.SETTINGS], keys.REQ_ADMIN, lambda: auth.api_key)
    app[REQLOG] = reqlog
    task = asyncio.create_task(reqlog.run(), name="sora2api.request-log")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    try:
        await reqlog.flush()
    except Exception:
        log.exception("could not write the last request log entries")
