"""A job's phases and its live run: the event log every reader follows, and how a job ends
(JobFailed, and the failure each exception becomes)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, UnavailableError
from .upstream.errors import Kind, UpstreamFailure

# The job's phases: the step a restart resumes from. Each move is one database update.
QUEUED = "queued"  # waiting for a token
SUBMITTING = "submitting"  # a token is leased; uploads and the create call are under way
SUBMITTED = "submitted"  # the upstream task exists: its id is stored
POLLING = "polling"  # the token's watcher follows the task
CACHING = "caching"  # the task finished; its result is being downloaded
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
FINAL = (COMPLETED, FAILED, CANCELLED)
# Where each phase may go next (every phase may also end in FINAL). SUBMITTING goes back to
# QUEUED only when the upstream proved it created nothing (the job then waits for another token);
# a resumed job re-enters the phase it stopped in.
_MOVES: dict[str, frozenset[str]] = {
    "": frozenset({QUEUED}),
    QUEUED: frozenset({QUEUED, SUBMITTING}),
    SUBMITTING: frozenset({QUEUED, SUBMITTING, SUBMITTED}),
    SUBMITTED: frozenset({SUBMITTED, POLLING}),
    POLLING: frozenset({POLLING, CACHING}),
    CACHING: frozenset({CACHING}),
}


def status_of(phase: str) -> str:
    """The coarse status every listing shows: queued only while waiting for a token."""
    if phase in FINAL or phase == QUEUED:
        return phase
    return "in_progress"


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
