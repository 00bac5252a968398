"""The job engine: every generation is a row written before the upstream is called, run by a task
that no client can kill, followed by any number of readers, and resumed after a restart from the
phase its row records (queued → submitting → submitted → polling → caching → a final one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import ClientSession

from .errors import ApiError, NotFoundError
from .flows.request import GenRequest
from .job_run import (  # the phases, Event, JobFailed, JobRun: re-exported, they lived here
    _MOVES,
    CACHING,
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL,
    POLLING,
    QUEUED,
    SUBMITTED,
    SUBMITTING,
    Event,
    JobFailed,
    JobRun,
    _as_failure,
    _restarting,
    new_job_id,
    status_of,
)
from .media import MediaCache
from .metering import measured, planned
from .pool import TokenPool
from .providers.limits import PollLimits
from .settings import Settings
from .store import JobRow, Store
from .upstream.errors import UpstreamFailure
from .viewcache import ViewCache

if TYPE_CHECKING:  # only annotations: app.py builds Sora's pieces, the engine just carries them
    from .providers.sora.client import SoraClient
    from .providers.sora.watcher import Watchers

# What other modules import from here, the names that moved to job_run.py included.
__all__ = [
    "ACTIVE",
    "CACHING",
    "POLLING",
    "QUEUED",
    "SUBMITTED",
    "SUBMITTING",
    "Event",
    "FlowFn",
    "JobContext",
    "JobEngine",
    "JobFailed",
    "JobRun",
]

log = logging.getLogger(__name__)


ACTIVE = ("queued", "in_progress")
# Stage and progress are persisted at most this often per job.
_PROGRESS_WRITE_INTERVAL = 2.0


FlowFn = Callable[["JobContext"], Awaitable[dict[str, Any]]]


class JobContext:
    """What a flow gets: the request, the services, and ways to report and persist progress."""

    def __init__(self, engine: JobEngine, run: JobRun, req: GenRequest | None, row: JobRow) -> None:
        self.engine = engine
        self.run = run
        self.req = req
        # The row as last moved by transition(): a frozen JobRow, replaced (never changed) there.
        self.row = row
        self.state: dict[str, Any] = orjson.loads(row.state or "{}")
        self.phase: str = row.phase or ""
        # Upstream side effects still to undo (see JobEngine.undo), as stored in `cleanup`.
        self.cleanup: list[dict[str, Any]] = orjson.loads(row.cleanup or "[]")
        self._last_write = 0.0
        self._last_progress: float = -1.0

    @property
    def job_id(self) -> str:
        return self.run.job_id

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def client(self) -> SoraClient:
        return self.engine.client

    @property
    def pool(self) -> TokenPool:
        return self.engine.pool

    @property
    def media(self) -> MediaCache:
        return self.engine.media

    async def emit(
        self,
        stage: str,
        status: str,
        message: str,
        progress: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.run.emit(Event(stage, status, message, progress, details))
        values: dict[str, Any] = {"stage": stage}
        if progress is not None:
            values["progress"] = progress
        # Stage and progress are for display: write them at most every couple of seconds. What
        # a restart needs (token, task id, phase, result) goes through save() at once.
        now = time.monotonic()
        if now - self._last_write >= _PROGRESS_WRITE_INTERVAL:
            self._last_write = now
            await self.save(**values)

    async def progress(
        self, stage: str, pct: float, message: str, details: dict[str, Any] | None = None
    ) -> None:
        """A progress event, only when the number moved (polls repeat the same value)."""
        pct = max(0.0, min(100.0, pct))
        if pct <= self._last_progress:
            return
        self._last_progress = pct
        await self.emit(stage, "processing", message, pct, details)

    async def save(self, **values: Any) -> None:
        if "state" in values:
            values["state"] = orjson.dumps(values["state"]).decode()
        values["updated_at"] = time.time()
        await self.engine.store.jobs.update(self.job_id, values)
        self.engine.job_changed(self.job_id)

    async def save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        await self.save(state=self.state)

    async def transition(
        self, phase: str, *, state: dict[str, Any] | None = None, **columns: Any
    ) -> None:
        """Move to `phase`, writing its data (columns and state changes) in the same update."""
        if phase not in FINAL and phase not in _MOVES.get(self.phase, frozenset()):
            raise RuntimeError(f"job {self.job_id}: no move from {self.phase!r} to {phase!r}")
        if state:
            self.state.update(state)
        values: dict[str, Any] = {"phase": phase, "status": status_of(phase), **columns}
        if state is not None:
            values["state"] = self.state
        if phase == SUBMITTING and not self.row.started_at:
            values["started_at"] = time.time()
        await self.save(**values)
        if phase in FINAL and self.engine.on_final is not None:
            self.engine.on_final()  # the update's trigger queued the webhooks: send them now
        self.phase = phase
        started = {"started_at": values["started_at"]} if "started_at" in values else {}
        self.row = replace(self.row, phase=phase, status=values["status"], **columns, **started)

    async def record_cleanup(self, kind: str, ident: str, token_id: int) -> None:
        """Remember an upstream side effect to undo when the job ends, however it ends."""
        self.cleanup.append({"kind": kind, "id": ident, "token_id": token_id})
        await self.save(cleanup=orjson.dumps(self.cleanup).decode())

    async def cleaned(self, entry: dict[str, Any]) -> None:
        """One side effect is undone: forget it."""
        if entry in self.cleanup:
            self.cleanup.remove(entry)
        await self.save(cleanup=orjson.dumps(self.cleanup).decode() if self.cleanup else None)

    async def on_queued(self, position: int) -> None:
        await self.emit(
            "processing",
            "started",
            f"Queued: every token is busy, waiting for a free slot (position {position})",
            details={"queued": True, "position": position},
        )


class JobEngine:
    """Submits, runs, follows, cancels and resumes jobs."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pool: TokenPool,
        client: SoraClient,
        watchers: Watchers,
        media: MediaCache,
        flow: Callable[[JobContext], Awaitable[dict[str, Any]]],
        resume_flow: Callable[[JobContext], Awaitable[dict[str, Any]]],
        after_video: Callable[[int], Awaitable[Any]] | None = None,
        undo: Callable[[JobContext], Awaitable[None]] | None = None,
        http: ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        # Sora's client and per-token watchers, built and closed by app.py: the engine never calls
        # them, it only hands them to Sora's flows (ctx.client, engine.watchers).
        self.client = client
        self.watchers = watchers
        self.media = media
        self._flow = flow
        self._resume_flow = resume_flow
        # Called with the token id after every finished video (the token manager's quota check).
        self.after_video = after_video
        # Undoes a job's recorded side effects (the provider's flows know how).
        self._undo = undo
        self._runs: dict[str, JobRun] = {}
        self._closing = False
        # Ready answers of finished jobs for the GET-one routes; job_changed() keeps them true.
        self.views = ViewCache()
        self._locks: dict[tuple[int, str], _CreateLock] = {}
        self._background: set[asyncio.Task[None]] = set()
        # For provider flows (flows/tasks.py): the app's session and per-account poll limits.
        self.http = http
        self.poll_limits = PollLimits()
        # Called after a job's final update (the webhook outbox's wake-up).
        self.on_final: Callable[[], None] | None = None

    @property
    def closing(self) -> bool:
        """True once shutdown began: a cancelled job then keeps its upstream task for the restart."""
        return self._closing

    @contextlib.asynccontextmanager
    async def create_lock(self, token_id: int, prompt: str) -> AsyncIterator[None]:
        """Held around a create and its recording, and around a reconciliation: a job looking
        for its task on a token cannot adopt one that a concurrent create has not recorded yet."""
        key = (token_id, prompt)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _CreateLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:  # one lock per (token, prompt) in use, not per prompt ever seen
                del self._locks[key]

    async def owned_task_ids(self, task_ids: list[str]) -> set[str]:
        """Which of these upstream task ids some job already holds."""
        return await self.store.jobs.owned_task_ids(task_ids)

    # -- submission -----------------------------------------------------------------------

    async def submit(
        self,
        req: GenRequest,
        *,
        api: str = "chat",
        remixed_from: str | None = None,
        key_id: int | None = None,
        webhook_url: str | None = None,
    ) -> JobRun:
        """Write the job row, then start it. Nothing reaches the upstream before the row exists.
        `key_id` is the created API key that asked (None: the bootstrap key or the panel);
        `webhook_url` is the create's own, told of the end besides the key's URLs."""
        job_id = new_job_id(req.kind)
        now = time.time()
        described = req.describe()
        row = JobRow(
            id=job_id,
            kind=req.kind,
            api=api,
            model=req.model.id,
            request=orjson.dumps(described).decode(),
            prompt=req.prompt[:4000],
            status="queued",
            phase=QUEUED,
            progress=0.0,
            state="{}",
            remixed_from=remixed_from,
            created_at=now,
            updated_at=now,
            key_id=key_id,
            webhook_url=webhook_url,
            **planned(described, req.kind),
        )
        await self.store.jobs.insert(row)
        run = JobRun(job_id, req.kind)
        self._runs[job_id] = run
        ctx = JobContext(self, run, req, row)
        run.task = asyncio.create_task(self._execute(ctx, self._flow), name=f"job-{job_id}")
        return run

    def job_changed(self, job_id: str) -> None:
        """Called after every write or delete of a job row: cached answers built from it go."""
        self.views.forget(job_id)

    def run_of(self, job_id: str) -> JobRun | None:
        return self._runs.get(job_id)

    async def get(self, job_id: str) -> JobRow:
        row = await self.store.jobs.get(job_id)
        if row is None:
            raise NotFoundError(f"No job with id {job_id!r}", param="id")
        return row

    async def wait(self, run: JobRun, seconds: float) -> None:
        """Wait for a run to end, at most `seconds` (TimeoutError after that)."""
        async with asyncio.timeout(seconds):
            await run.done.wait()

    def job_timeout(self, kind: str) -> float:
        up = self.settings.current.upstream
        # Queueing, uploads and caching come on top of the upstream generation time.
        base = up.image_timeout if kind == "image" else up.video_timeout
        return base + self.settings.current.generation.queue_timeout + 600

    # -- running --------------------------------------------------------------------------

    async def _execute(self, ctx: JobContext, flow: FlowFn) -> None:
        run = ctx.run
        try:
            async with asyncio.timeout(self.job_timeout(run.kind)):
                result = await flow(ctx)
            await self.undo(ctx)
            run.result = result
            await ctx.transition(
                COMPLETED,
                progress=100.0,
                result=orjson.dumps(result).decode(),
                completed_at=time.time(),
                **measured(run.kind, result),
            )
        except asyncio.CancelledError:
            if self._closing:
                run.error = run.error or _restarting(run.job_id)
                raise  # shutdown: the row keeps its phase and is resumed at the next start
            run.error = JobFailed("cancelled", "The job was cancelled")
            await self.undo(ctx)
            await self._fail_row(ctx, run.error, phase=CANCELLED)
        except Exception as exc:
            run.error = _as_failure(exc)
            if not run.error.policy and not isinstance(exc, JobFailed | ApiError | UpstreamFailure):
                log.exception("job %s crashed", run.job_id)
            await self.undo(ctx)
            await self._fail_row(ctx, run.error)
        finally:
            run.finish()
            # Keep finished runs briefly so late followers still see the event log.
            asyncio.get_running_loop().call_later(300, self._runs.pop, run.job_id, None)

    async def undo(self, ctx: JobContext) -> None:
        """Undo the job's recorded upstream side effects; what fails stays recorded for the
        next start. Shielded: a cancelled job still deletes its temporary character."""
        if not ctx.cleanup or self._undo is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(self._undo(ctx))

    async def _fail_row(self, ctx: JobContext, err: JobFailed, phase: str = FAILED) -> None:
        with contextlib.suppress(Exception):
            await ctx.transition(
                phase,
                error_code=err.code,
                error_message=err.message,
                completed_at=time.time(),
            )

    async def cancel(self, job_id: str) -> bool:
        """Stop a running job: its task is cancelled, which releases its token slot."""
        run = self._runs.get(job_id)
        if run is None or run.task is None or run.task.done():
            return False
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run.task
        return True

    async def page(
        self,
        kind: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: str = "desc",
        statuses: tuple[str, ...] | None = None,
        key_id: int | None = None,
    ) -> tuple[list[JobRow], bool]:
        """One page of a kind's jobs (optionally only these statuses, only one API key's),
        newest first (or oldest with order="asc"), and has_more."""
        anchor = None
        if after:
            row = await self.get(after)
            anchor = (row.created_at, row.id)
        rows = await self.store.jobs.of_kind(
            kind, statuses=statuses, anchor=anchor, order=order, limit=limit + 1, key_id=key_id
        )
        return rows[:limit], len(rows) > limit

    async def delete(self, job_id: str) -> JobRow:
        """Stop the job if it runs, then remove its cached files and its row; returns the last row."""
        row = await self.get(job_id)
        if row.status in ACTIVE:
            await self.cancel(job_id)
            row = await self.get(job_id)
        if row.cleanup:  # a side effect whose undo failed earlier: one more try
            await self.undo(JobContext(self, JobRun(job_id, row.kind), None, row))
        state = orjson.loads(row.state or "{}")
        for name in [*state.get("files", []), state.get("thumbnail")]:
            if isinstance(name, str):
                self.media.delete(name)
        await self.store.jobs.delete(job_id)
        self.job_changed(job_id)
        self._runs.pop(job_id, None)
        return row

    async def resume_all(self) -> int:
        """At start-up: continue every job a previous process left running from its phase, never
        resubmitting, and finish the cleanup of ended jobs whose side effects are still recorded."""
        for row in await self.store.jobs.ended_with_cleanup():
            ctx = JobContext(self, JobRun(row.id, row.kind), None, row)
            task = asyncio.create_task(self.undo(ctx), name=f"undo-{row.id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        rows = await self.store.jobs.running()
        for row in rows:
            run = JobRun(row.id, row.kind)
            self._runs[row.id] = run
            ctx = JobContext(self, run, None, row)
            run.task = asyncio.create_task(
                self._execute(ctx, self._resume_flow), name=f"job-{row.id}"
            )
        if rows:
            log.info("resuming %d job(s) left running by the previous process", len(rows))
        return len(rows)

    def release_followers(self) -> None:
        """On shutdown, end every stream and waiter cleanly: their jobs go on after the restart."""
        self._closing = True
        for run in self._runs.values():
            if not run.done.is_set():
                run.error = _restarting(run.job_id)
                run.finish()

    async def close(self) -> None:
        self._closing = True
        tasks = [r.task for r in self._runs.values() if r.task and not r.task.done()]
        tasks += list(self._background)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


@dataclass(slots=True)
class _CreateLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
