"""The job engine: every generation is a row written before the upstream is called, run by a task
that no client can kill, followed by any number of readers, and resumed after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import ApiError, NotFoundError, UnavailableError
from .flows.request import GenRequest
from .media import MediaCache
from .pool import TokenPool
from .settings import Settings
from .store import Row, Store
from .upstream.client import SoraClient
from .upstream.errors import Kind, UpstreamFailure
from .viewcache import ViewCache
from .watcher import Watchers

log = logging.getLogger(__name__)

ACTIVE = ("queued", "in_progress")
# Stage and progress are persisted at most this often per job.
_PROGRESS_WRITE_INTERVAL = 2.0


def new_job_id(kind: str) -> str:
    prefix = {"image": "img", "video": "video", "character": "char"}[kind]
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(slots=True)
class Event:
    """One progress step, in the README's reasoning_content shape."""

    stage: str
    status: str
    message: str
    progress: float | None = None
    details: dict[str, Any] | None = None
    timestamp: int = field(default_factory=lambda: int(time.time()))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "status": self.status}
        if self.progress is not None:
            out["progress"] = round(self.progress, 1)
        out["message"] = self.message
        if self.details:
            out["details"] = self.details
        out["timestamp"] = self.timestamp
        return out


class JobFailed(Exception):
    """Ends a job as failed with a code and the user-facing message."""

    def __init__(self, code: str, message: str, *, policy: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.policy = policy


class JobRun:
    """The live side of a running job: its event log, its final outcome and its task."""

    def __init__(self, job_id: str, kind: str) -> None:
        self.job_id = job_id
        self.kind = kind
        self.events: list[Event] = []
        self.result: dict[str, Any] | None = None
        self.error: JobFailed | None = None
        self.done = asyncio.Event()
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    def finish(self) -> None:
        self.done.set()
        self._changed.set()

    async def follow(self, tick: float) -> AsyncIterator[Event | None]:
        """Every event from the first, then new ones as they come; None when `tick` seconds
        pass in silence (the SSE writer turns that into a keep-alive comment)."""
        index = 0
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.done.is_set():
                return
            changed = self._changed
            try:
                async with asyncio.timeout(tick):
                    await changed.wait()
            except TimeoutError:
                yield None


FlowFn = Callable[["JobContext"], Awaitable[dict[str, Any]]]


class JobContext:
    """What a flow gets: the request, the services, and ways to report and persist progress."""

    def __init__(self, engine: JobEngine, run: JobRun, req: GenRequest | None, row: Row) -> None:
        self.engine = engine
        self.run = run
        self.req = req
        self.row = row
        self.state: dict[str, Any] = orjson.loads(row.get("state") or "{}")
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
        await self.engine.store.update("jobs", "id", self.job_id, values)
        self.engine.job_changed(self.job_id)

    async def save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        await self.save(state=self.state)

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
        media: MediaCache,
        flow: Callable[[JobContext], Awaitable[dict[str, Any]]],
        resume_flow: Callable[[JobContext], Awaitable[dict[str, Any]]],
        after_video: Callable[[int], Awaitable[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.client = client
        self.media = media
        self.watchers = Watchers(settings, pool, client)
        self._flow = flow
        self._resume_flow = resume_flow
        # Called with the token id after every finished video (the token manager's quota check).
        self.after_video = after_video
        self._runs: dict[str, JobRun] = {}
        self._closing = False
        # Ready answers of finished jobs for the GET-one routes; job_changed() keeps them true.
        self.views = ViewCache()

    # -- submission -----------------------------------------------------------------------

    async def submit(
        self, req: GenRequest, *, api: str = "chat", remixed_from: str | None = None
    ) -> JobRun:
        """Write the job row, then start it. Nothing reaches the upstream before the row exists."""
        job_id = new_job_id(req.kind)
        now = time.time()
        row = {
            "id": job_id,
            "kind": req.kind,
            "api": api,
            "model": req.model.id,
            "request": orjson.dumps(req.describe()).decode(),
            "prompt": req.prompt[:4000],
            "status": "queued",
            "progress": 0.0,
            "state": "{}",
            "remixed_from": remixed_from,
            "created_at": now,
            "updated_at": now,
        }
        await self.store.insert("jobs", row)
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

    async def get(self, job_id: str) -> Row:
        row = await self.store.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
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
            await ctx.save(status="in_progress", started_at=time.time())
            async with asyncio.timeout(self.job_timeout(run.kind)):
                result = await flow(ctx)
            run.result = result
            await ctx.save(
                status="completed",
                progress=100.0,
                result=orjson.dumps(result).decode(),
                completed_at=time.time(),
            )
        except asyncio.CancelledError:
            if self._closing:
                run.error = run.error or _restarting(run.job_id)
                raise  # shutdown: the row stays in_progress and is resumed at the next start
            run.error = JobFailed("cancelled", "The job was cancelled")
            await self._fail_row(ctx, run.error, status="cancelled")
        except Exception as exc:
            run.error = _as_failure(exc)
            if not run.error.policy and not isinstance(exc, JobFailed | ApiError | UpstreamFailure):
                log.exception("job %s crashed", run.job_id)
            await self._fail_row(ctx, run.error)
        finally:
            run.finish()
            # Keep finished runs briefly so late followers still see the event log.
            asyncio.get_running_loop().call_later(300, self._runs.pop, run.job_id, None)

    async def _fail_row(self, ctx: JobContext, err: JobFailed, status: str = "failed") -> None:
        with contextlib.suppress(Exception):
            await ctx.save(
                status=status,
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
        self, kind: str, *, after: str | None = None, limit: int = 20, order: str = "desc"
    ) -> tuple[list[Row], bool]:
        """One page of a kind's jobs, newest first (or oldest with order="asc"), and has_more."""
        where, params = "kind = ?", [kind]
        if after:
            anchor = await self.get(after)
            op = "<" if order == "desc" else ">"
            # (created_at, id) is a total order, so rows created in the same instant are not
            # skipped; as a row value it is one range on the jobs(kind, created_at, id) index.
            where += f" AND (created_at, id) {op} (?, ?)"
            params += [anchor["created_at"], anchor["id"]]
        direction = "DESC" if order == "desc" else "ASC"
        rows = await self.store.fetchall(
            f"SELECT * FROM jobs WHERE {where} ORDER BY created_at {direction}, id {direction} LIMIT ?",
            (*params, limit + 1),
        )
        return rows[:limit], len(rows) > limit

    async def delete(self, job_id: str) -> Row:
        """Stop the job if it runs, then remove its cached files and its row; returns the last row."""
        row = await self.get(job_id)
        if row["status"] in ACTIVE:
            await self.cancel(job_id)
            row = await self.get(job_id)
        state = orjson.loads(row.get("state") or "{}")
        for name in [*state.get("files", []), state.get("thumbnail")]:
            if isinstance(name, str):
                self.media.delete(name)
        await self.store.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self.job_changed(job_id)
        self._runs.pop(job_id, None)
        return row

    async def resume_all(self) -> int:
        """At start-up: continue every job a previous process left running, never resubmitting."""
        rows = await self.store.fetchall(
            "SELECT * FROM jobs WHERE status IN ('queued', 'in_progress') ORDER BY created_at"
        )
        for row in rows:
            run = JobRun(row["id"], row["kind"])
            self._runs[row["id"]] = run
            ctx = JobContext(self, run, None, row)
            run.task = asyncio.create_task(
                self._execute(ctx, self._resume_flow), name=f"job-{row['id']}"
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
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.watchers.close()


def _restarting(job_id: str) -> JobFailed:
    return JobFailed(
        "server_restarting",
        f"The server is restarting. Job {job_id} keeps its place upstream and resumes after the "
        f"restart: fetch its result with GET /v1/videos/{job_id} (or /v1/images/{job_id}).",
    )


def _as_failure(exc: BaseException) -> JobFailed:
    if isinstance(exc, JobFailed):
        return exc
    if isinstance(exc, UpstreamFailure):
        if exc.kind is Kind.CONTENT_POLICY:
            return JobFailed(
                "content_policy_violation", f"Content policy violation: {exc.message}", policy=True
            )
        return JobFailed(exc.kind.value, exc.describe())
    if isinstance(exc, UnavailableError):
        return JobFailed("no_available_tokens", exc.message)
    if isinstance(exc, ApiError):
        return JobFailed(exc.code or exc.type, exc.message)
    if isinstance(exc, TimeoutError):
        return JobFailed("timeout", "The job exceeded its time limit")
    return JobFailed("internal_error", f"Internal error: {type(exc).__name__}")
