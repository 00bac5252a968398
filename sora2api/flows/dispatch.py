"""Which flow runs a job: Sora's own (providers/sora/flows.py) or the generic one (tasks.py)."""

from __future__ import annotations

from typing import Any

import orjson

from ..jobs import JobContext
from ..providers import DEFAULT_PROVIDER
from ..providers.sora.flows import resume_flow, run_flow
from .task_resume import resume_task_flow
from .tasks import run_task_flow


async def run_job(ctx: JobContext) -> dict[str, Any]:
    """The engine's flow: a request for a provider model runs the generic task flow."""
    if ctx.req is not None and ctx.req.spec is not None:
        return await run_task_flow(ctx)
    return await run_flow(ctx)


async def resume_job(ctx: JobContext) -> dict[str, Any]:
    """The engine's resume: the stored request says which provider the job belongs to."""
    spec: dict[str, Any] = orjson.loads(ctx.row.request or "{}")
    if spec.get("provider") not in (None, DEFAULT_PROVIDER):
        return await resume_task_flow(ctx)
    return await resume_flow(ctx)
