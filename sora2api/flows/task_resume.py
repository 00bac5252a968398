"""Resuming a provider job after a restart from the phase its row records, never resending a
create that may have reached the upstream (see tasks.py for the flow itself)."""

from __future__ import annotations

from typing import Any

import orjson

from .. import registry
from ..jobs import QUEUED, SUBMITTING, JobContext, JobFailed
from ..models import Model
from .request import GenRequest
from .tasks import following, run_task_flow


def _rebuild(ctx: JobContext) -> GenRequest | None:
    """The request of a stored provider job that has not reached the upstream (no media kept)."""
    spec: dict[str, Any] = orjson.loads(ctx.row.request or "{}")
    if spec.get("image"):
        return None
    model_id = str(spec.get("model") or "")
    found = registry.resolve(ctx.pool.rows(), model_id)
    if found is None:
        return None
    model = Model(
        model_id,
        "video",
        found.description,
        width=int(spec.get("width") or 0),
        height=int(spec.get("height") or 0),
        seconds=int(spec.get("seconds") or 0),
    )
    remix = spec.get("mode") == "remix"
    return GenRequest(
        model=model,
        mode="remix" if remix else "video",
        prompt=str(spec.get("prompt") or ""),
        remix_target_id=spec.get("remix_target_id") if remix else None,
        spec=found,
        options=dict(spec.get("options") or {}),
    )


async def resume_task_flow(ctx: JobContext) -> dict[str, Any]:
    """Continue a provider job from its stored phase after a restart; never resend a create."""
    create = ctx.state.get("create")
    if ctx.phase in ("", QUEUED) or (ctx.phase == SUBMITTING and not create):
        req = _rebuild(ctx)
        if req is None:
            raise JobFailed(
                "interrupted",
                "The server restarted before this job reached the upstream, and its image is not "
                "kept (or no account serves its model any more); it was not resubmitted. Submit "
                "it again.",
            )
        ctx.req = req
        if ctx.phase == SUBMITTING:
            await ctx.transition(QUEUED, token_id=None)
        return await run_task_flow(ctx)
    if ctx.phase == SUBMITTING:
        raise JobFailed(
            "interrupted",
            "The server restarted while this job's create call was in flight, so whether the "
            "upstream made the task is unknown; it was not sent again (that could spend quota "
            "twice). Check the account before resubmitting.",
        )
    token_id, task_id = ctx.row.token_id, ctx.row.upstream_task_id
    if token_id is None or not task_id:
        raise JobFailed("interrupted", f"The job stopped in phase {ctx.phase!r} without a task")
    async with ctx.pool.lease("video", token_id=int(token_id)) as lease:
        await ctx.emit(
            "generation",
            "processing",
            f"Resumed after a server restart (phase {ctx.phase})",
            details={"task_id": task_id},
        )
        return await following(ctx, lease, str(task_id))
