"""Where a task stands at a given clock time. Pure functions: the state is derived, not stepped."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .records import Task

# Progress never reports 1.0 while a task is still listed, as the real lists never did.
_MAX_RUNNING_PROGRESS = 0.99


@dataclass(frozen=True, slots=True)
class Phase:
    """A task's status as the list endpoints report it."""

    status: str  # queued | running | processing | failed | done
    progress: float | None


def phase(task: Task, now: float) -> Phase:
    """The task's phase at `now`; "done" means it left the running state (any outcome)."""
    running = "running" if task.kind == "video" else "processing"
    elapsed = now - task.created
    if elapsed < task.queued:
        return Phase("queued", None)
    elapsed -= task.queued
    if elapsed < task.plateau or math.isinf(task.plateau):
        return Phase(running, 0.0)
    elapsed -= task.plateau
    frac = elapsed / task.duration if task.duration > 0 else 1.0
    outcome = task.scenario.outcome
    if outcome == "fail" and frac >= task.scenario.fail_at:
        return Phase("failed", round(task.scenario.fail_at, 4))
    if frac >= 1.0:
        if task.kind == "image" and outcome == "violation":
            return Phase("failed", 1.0)
        return Phase("done", 1.0)
    if task.scenario.jumpy:
        # A saw-tooth on top of the ramp: some polls see progress go backwards.
        frac += 0.15 * math.sin(frac * 40.0)
    return Phase(running, round(min(max(frac, 0.0), _MAX_RUNNING_PROGRESS), 4))
