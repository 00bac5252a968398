"""One watcher per busy token: a single poll of the token's task lists serves all its jobs.

The backend has no per-task status endpoint, only per-account lists (recent_tasks for images,
nf/pending for running videos, drafts for finished ones). Polling them once per job would multiply
calls by the number of jobs; a watcher polls each list once per interval and fans results out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from .errors import NotFoundError
from .pool import TokenPool
from .settings import Settings
from .upstream.client import SoraClient
from .upstream.errors import Kind, UpstreamFailure

log = logging.getLogger(__name__)

# Consecutive failed polls (of a non-token-fatal kind) before the jobs on that token fail.
MAX_POLL_ERRORS = 5
# Polls a task may be missing from every list before it counts as vanished.
VANISH_POLLS = 40


@dataclass(slots=True)
class Update:
    """What one poll learned about one task."""

    state: str  # "progress" | "done" | "failed"
    progress: float = 0.0  # 0..1
    status: str = ""
    data: dict[str, Any] | None = None  # the finished task (image) or draft (video)
    failure: UpstreamFailure | None = None


@dataclass(slots=True)
class _Tracked:
    task_id: str
    kind: str  # image | video
    queue: asyncio.Queue[Update] = field(default_factory=asyncio.Queue)
    progress: float = 0.0
    missing: int = 0


def _violation(draft: dict[str, Any]) -> str | None:
    reason = draft.get("reason_str") or draft.get("markdown_reason_str")
    if draft.get("kind") == "sora_content_violation" or reason:
        return str(reason or "the result violated Sora's content policy")
    return None


def _pct(value: Any) -> float:
    if not isinstance(value, int | float):
        return 0.0  # null early on
    return float(value) / 100.0 if value > 1 else float(value)


class TokenWatcher:
    """Polls one token's lists while it has tracked tasks."""

    def __init__(self, token_id: int, owner: Watchers) -> None:
        self.token_id = token_id
        self._owner = owner
        self._tasks: dict[str, _Tracked] = {}
        self._runner: asyncio.Task[None] | None = None
        self._errors = 0

    def track(self, task_id: str, kind: str) -> asyncio.Queue[Update]:
        tracked = self._tasks.get(task_id) or _Tracked(task_id, kind)
        self._tasks[task_id] = tracked
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=f"watcher-{self.token_id}")
        return tracked.queue

    def untrack(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    def _interval(self) -> float:
        base = self._owner.settings.current.upstream.poll_interval
        # Early on nothing changes quickly: poll half as often until a task passes 30 %.
        if self._tasks and max(t.progress for t in self._tasks.values()) < 0.3:
            return base * 2
        return base

    async def _run(self) -> None:
        try:
            while self._tasks:
                await asyncio.sleep(self._interval())
                if not self._tasks:
                    break
                try:
                    await self._poll_once()
                    self._errors = 0
                except UpstreamFailure as failure:
                    self._on_error(failure)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave jobs waiting forever
            log.exception("watcher for token %d crashed", self.token_id)
            self._fail_all(UpstreamFailure(Kind.MALFORMED, f"internal polling error: {exc!r}"))

    def _on_error(self, failure: UpstreamFailure) -> None:
        self._errors += 1
        fatal = failure.kind in (Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED, Kind.COUNTRY)
        log.info("token %d poll failed (%d): %s", self.token_id, self._errors, failure.describe())
        if fatal or self._errors >= MAX_POLL_ERRORS:
            failure.message = f"polling failed {self._errors}x: {failure.message}"
            self._fail_all(failure)
            # One report for the token, not one per job that was waiting on it.
            self._owner.spawn(self._owner.pool.report_failure(self.token_id, failure))
            failure.reported = True

    def _fail_all(self, failure: UpstreamFailure) -> None:
        for t in list(self._tasks.values()):
            t.queue.put_nowait(Update("failed", t.progress, failure=failure))
        self._tasks.clear()

    def _send(self, t: _Tracked, update: Update) -> None:
        t.progress = max(t.progress, update.progress)
        t.queue.put_nowait(update)
        if update.state != "progress":
            self._tasks.pop(t.task_id, None)

    async def _poll_once(self) -> None:
        pool, client = self._owner.pool, self._owner.client
        try:
            tok = pool.state(self.token_id)
        except NotFoundError:
            # An admin deleted the token: its account's tasks can no longer be followed.
            self._fail_all(
                UpstreamFailure(
                    Kind.TOKEN_INVALID,
                    f"token {self.token_id} was deleted while this job ran; its result is on "
                    "that Sora account",
                    endpoint="poll",
                )
            )
            return
        at, proxy = tok.row["access_token"], tok.row.get("proxy") or None
        images = [t for t in self._tasks.values() if t.kind == "image"]
        videos = [t for t in self._tasks.values() if t.kind == "video"]
        if images:
            listed = {str(x.get("id")): x for x in await client.recent_tasks(at, proxy)}
            for t in images:
                self._image_update(t, listed.get(t.task_id))
        if videos:
            pending = {str(x.get("id")): x for x in await client.pending(at, proxy)}
            absent = []
            for t in videos:
                task = pending.get(t.task_id)
                if task is None:
                    absent.append(t)
                    continue
                t.missing = 0
                status = str(task.get("status") or "")
                if status in ("failed", "error", "cancelled"):
                    reason = (
                        task.get("error_message") or task.get("failure_reason") or f"task {status}"
                    )
                    self._send(
                        t, Update("failed", t.progress, status, failure=_task_failure(str(reason)))
                    )
                else:
                    self._send(
                        t, Update("progress", _pct(task.get("progress_pct")), status or "running")
                    )
            if absent:
                # Ask for enough drafts that a burst of finished tasks cannot scroll ours away.
                drafts = await client.drafts(at, proxy, limit=min(100, 15 + len(absent)))
                by_task = {str(d.get("task_id")): d for d in drafts}
                for t in absent:
                    self._draft_update(t, by_task.get(t.task_id))

    def _image_update(self, t: _Tracked, task: dict[str, Any] | None) -> None:
        if task is None:
            self._missing(t)
            return
        t.missing = 0
        status = str(task.get("status") or "")
        if status == "succeeded":
            self._send(t, Update("done", 1.0, status, data=task))
        elif status in ("failed", "error"):
            reason = (
                task.get("error_message") or task.get("failure_reason") or "image generation failed"
            )
            self._send(t, Update("failed", t.progress, status, failure=_task_failure(str(reason))))
        else:
            self._send(
                t, Update("progress", _pct(task.get("progress_pct")), status or "processing")
            )

    def _draft_update(self, t: _Tracked, draft: dict[str, Any] | None) -> None:
        if draft is None:
            self._missing(t)
            return
        reason = _violation(draft)
        if reason:
            failure = UpstreamFailure(Kind.CONTENT_POLICY, reason, endpoint="drafts")
            self._send(t, Update("failed", t.progress, "violation", failure=failure))
        elif draft.get("downloadable_url") or draft.get("url"):
            self._send(t, Update("done", 1.0, "completed", data=draft))
        else:
            # The draft exists but its file is not ready yet: keep polling (the reference
            # implementation wrongly called this a policy violation).
            t.missing = 0
            self._send(t, Update("progress", max(t.progress, 0.99), "finalizing"))

    def _missing(self, t: _Tracked) -> None:
        t.missing += 1
        if t.missing >= VANISH_POLLS:
            failure = UpstreamFailure(
                Kind.SERVER,
                f"task {t.task_id} disappeared upstream without a result",
                endpoint="poll",
            )
            self._send(t, Update("failed", t.progress, "vanished", failure=failure))


def _task_failure(reason: str) -> UpstreamFailure:
    low = reason.lower()
    kind = (
        Kind.CONTENT_POLICY
        if ("policy" in low or "violat" in low or "guardrail" in low)
        else Kind.BAD_REQUEST
    )
    return UpstreamFailure(kind, reason, endpoint="task")


class Watchers:
    """The set of per-token watchers."""

    def __init__(self, settings: Settings, pool: TokenPool, client: SoraClient) -> None:
        self.settings = settings
        self.pool = pool
        self.client = client
        self._by_token: dict[int, TokenWatcher] = {}
        # Strong references: the loop keeps only weak ones, and a collected task never runs.
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def for_token(self, token_id: int) -> TokenWatcher:
        w = self._by_token.get(token_id)
        if w is None:
            w = self._by_token[token_id] = TokenWatcher(token_id, self)
        return w

    async def close(self) -> None:
        for w in self._by_token.values():
            await w.stop()
