"""One watcher per busy token: a single poll of the token's task lists serves all its jobs.

The backend has no per-task status endpoint, only per-account lists (recent_tasks for images,
nf/pending for running videos, drafts for finished ones). Polling them once per job would multiply
calls by the number of jobs; a watcher polls each list once per interval and fans results out.

A failed poll says nothing about the tasks, which keep running upstream: the watcher backs off and
tells its jobs why they wait. Only a verdict on the token itself (invalid, expired, region) ends
them; otherwise each job's own timeout does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...errors import NotFoundError
from ...pool import TokenPool
from ...settings import Settings
from ...upstream.errors import Kind, UpstreamFailure
from .client import Page, SoraClient

log = logging.getLogger(__name__)

# Failures that are a verdict on the token, which no waiting cures: they end the token's jobs.
TOKEN_VERDICTS = frozenset({Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED, Kind.COUNTRY})
# After failed polls the interval doubles per failure in a row, up to this many seconds (or the
# pool's cooldown cap when lower: a poll waits no longer than a rate-limited create would)...
MAX_BACKOFF = 60.0
# ...or longer when the upstream asks with Retry-After, up to this (the job's timeout still rules).
MAX_RETRY_AFTER = 300.0
# One sleep lasts at most this long, so an absurd interval cannot overflow the loop's timer.
_MAX_NAP = 3600.0
# Polls a task may be missing from every list before it counts as vanished.
VANISH_POLLS = 40
# Pages of one list read per poll: a burst of up to 1,000 finished videos is still found.
MAX_PAGES = 10
DRAFTS_PAGE = 100  # the most the drafts endpoint gives per page
RECENT_PAGE = 20  # the most recent_tasks gives per page
# Upstream timestamps come from another clock: an item this much older than a job may be its own.
CLOCK_SKEW = 600.0

_REASONS = {
    Kind.RATE_LIMITED: "rate limited",
    Kind.QUOTA_EXHAUSTED: "quota exhausted",
    Kind.HEAVY_LOAD: "heavy load",
    Kind.CLOUDFLARE: "Cloudflare challenge",
    Kind.SENTINEL: "sentinel block",
    Kind.BAD_REQUEST: "request refused",
    Kind.NOT_FOUND: "not found",
    Kind.SERVER: "server error",
    Kind.MALFORMED: "unreadable answer",
    Kind.TIMEOUT: "no answer in time",
    Kind.TRANSPORT: "connection failed",
}


@dataclass(slots=True)
class Update:
    """What one poll learned about one task."""

    state: str  # "progress" | "delayed" (polling backs off; the task goes on) | "done" | "failed"
    progress: float = 0.0  # 0..1
    status: str = ""
    data: dict[str, Any] | None = None  # the finished task (image) or draft (video)
    failure: UpstreamFailure | None = None
    message: str = ""  # "delayed": the line the job's stream shows
    retry_in: float | None = None  # "delayed": seconds until the next poll


@dataclass(slots=True)
class _Tracked:
    task_id: str
    kind: str  # image | video
    since: float | None = None  # when the job began (Unix time): its result is newer than that
    queue: asyncio.Queue[Update] = field(default_factory=asyncio.Queue)
    progress: float = 0.0
    missing: int = 0


def _violation(draft: dict[str, Any]) -> str | None:
    reason = draft.get("reason_str") or draft.get("markdown_reason_str")
    if draft.get("kind") == "sora_content_violation" or reason:
        return str(reason or "the result violated Sora's content policy")
    return None


def _reason(failure: UpstreamFailure) -> str:
    label = _REASONS.get(failure.kind, failure.kind.value.replace("_", " "))
    return f"upstream {failure.status} {label}" if failure.status else f"upstream {label}"


def _timestamp(value: Any) -> float | None:
    """Unix seconds from a number (seconds or milliseconds) or an ISO 8601 string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
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
        self._errors = 0  # failed polls in a row; any success resets it
        self._trouble: UpstreamFailure | None = None  # the last of them
        self._wake = asyncio.Event()

    def track(self, task_id: str, kind: str, since: float | None = None) -> asyncio.Queue[Update]:
        tracked = self._tasks.get(task_id) or _Tracked(task_id, kind, since)
        self._tasks[task_id] = tracked
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=f"watcher-{self.token_id}")
        return tracked.queue

    def untrack(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    @property
    def trouble(self) -> UpstreamFailure | None:
        """Why polls have failed since the last good one, if they have."""
        return self._trouble

    def wake(self) -> None:
        """Re-time the current sleep (the settings changed)."""
        self._wake.set()

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

    def _delay(self) -> float:
        """Seconds from one poll to the next: the interval, or the backoff after failures."""
        base = self._interval()
        if not self._errors:
            return base
        cap = min(MAX_BACKOFF, self._owner.settings.current.pool.cooldown_max)
        delay = max(base, min(cap, base * 2.0 ** min(self._errors, 32)))
        asked = self._trouble.retry_after if self._trouble is not None else None
        return max(delay, min(asked, MAX_RETRY_AFTER)) if asked else delay

    async def _pause(self) -> None:
        """Sleep until the next poll is due, re-reckoned whenever the settings change."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while (left := start + self._delay() - loop.time()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, _MAX_NAP)):
                    await self._wake.wait()

    async def _run(self) -> None:
        self._errors, self._trouble = 0, None  # an earlier bad spell says nothing about this one
        try:
            while self._tasks:
                await self._pause()
                if not self._tasks:
                    break
                try:
                    await self._poll_once()
                except UpstreamFailure as failure:
                    self._on_error(failure)
                else:
                    self._errors, self._trouble = 0, None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave jobs waiting forever
            log.exception("watcher for token %d crashed", self.token_id)
            self._fail_all(UpstreamFailure(Kind.MALFORMED, f"internal polling error: {exc!r}"))

    def _on_error(self, failure: UpstreamFailure) -> None:
        if failure.kind in TOKEN_VERDICTS:
            log.info("token %d poll failed: %s", self.token_id, failure.describe())
            self._fail_all(failure)
            # One report for the token, not one per job that was waiting on it.
            self._owner.spawn(self._owner.pool.report_failure(self.token_id, failure))
            failure.reported = True
            self._errors, self._trouble = 0, None
            return
        # The tasks go on upstream: wait longer and keep them. Not reported to the pool, whose
        # reactions (cooldown, error ban) are for creates; a bad list poll proves nothing more.
        self._errors += 1
        self._trouble = failure
        delay = self._delay()
        log.info(
            "token %d poll failed (%d in a row, next in %.3g s): %s",
            self.token_id,
            self._errors,
            delay,
            failure.describe(),
        )
        message = f"Status polling delayed: {_reason(failure)}; retrying in {delay:.3g} s"
        for t in self._tasks.values():
            t.queue.put_nowait(
                Update("delayed", t.progress, failure=failure, message=message, retry_in=delay)
            )

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
            listed = await _find(
                lambda cursor: client.recent_tasks_page(
                    at, proxy, limit=RECENT_PAGE, cursor=cursor
                ),
                images,
                "id",
            )
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
                # The first page is sized for the usual case; a burst of finished tasks pages on.
                first = min(DRAFTS_PAGE, 15 + len(absent))
                by_task = await _find(
                    lambda cursor: client.drafts_page(
                        at, proxy, limit=DRAFTS_PAGE if cursor else first, cursor=cursor
                    ),
                    absent,
                    "task_id",
                )
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


async def _find(
    fetch: Callable[[str | None], Awaitable[Page]], wanted: list[_Tracked], key: str
) -> dict[str, dict[str, Any]]:
    """Items of a newest-first list whose `key` is a wanted task id, read page by page.

    Stops when all are found, at the list's end, at items older than the oldest wanted job, or
    after MAX_PAGES (the rest are looked for again at the next poll).
    """
    ids = {t.task_id for t in wanted}
    starts = [t.since for t in wanted]
    oldest = min(s for s in starts if s is not None) - CLOCK_SKEW if None not in starts else None
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        for item in page.items:
            item_key = str(item.get(key))
            if item_key in ids:
                found.setdefault(item_key, item)
        if len(found) == len(ids) or page.cursor is None or page.cursor == cursor:
            break
        last = _timestamp(page.items[-1].get("created_at")) if page.items else None
        if oldest is not None and last is not None and last < oldest:
            break
        cursor = page.cursor
    return found


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
        # A new poll interval reaches sleeping watchers at once, not after their old sleep.
        self._unsubscribe = settings.on_change(self._settings_changed)

    def _settings_changed(self) -> None:
        for w in self._by_token.values():
            w.wake()

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
        self._unsubscribe()
        for w in self._by_token.values():
            await w.stop()
