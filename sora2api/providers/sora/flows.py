"""The generation flows: image, video (t2v, i2v, remix, storyboard), character, watermark-free.

Each flow leases a token, submits once, then follows the task through the token's watcher. The
job moves through the engine's phases (queued, submitting, submitted, polling, caching), each
written with its data, so a restart continues from the phase it stopped in. A failure that proves
no task was created moves the job to another token; a create whose answer leaves that open is
reconciled against the account's task lists, never resent (that could spend the quota twice).

This module picks the flow and resumes a stored job; the flows are in images.py, video.py and
characters.py, the steps they share in steps.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...flows.request import GenRequest
from ...jobs import CACHING, QUEUED, SUBMITTED, SUBMITTING, JobContext, JobFailed
from ...models import MODELS, Model
from ...upstream.errors import UpstreamFailure
from .characters import _character, _character_video
from .images import _finish_image, _follow_image, _image
from .prompts import parse_storyboard
from .reconcile import find_task
from .steps import _report
from .video import _finish_video, _follow_video, _video


def _spec(ctx: JobContext) -> dict[str, Any]:
    spec: dict[str, Any] = orjson.loads(ctx.row.request)
    return spec


async def run_flow(ctx: JobContext) -> dict[str, Any]:
    req = ctx.req
    assert req is not None
    await ctx.emit(
        "generation",
        "started",
        "Initializing generation request...",
        details={"job_id": ctx.job_id, "mode": req.mode},
    )
    if req.mode == "image":
        return await _image(ctx)
    if req.mode == "character":
        return await _character(ctx)
    if req.mode == "character_video":
        return await _character_video(ctx)
    return await _video(ctx)


def _rebuild_request(ctx: JobContext) -> GenRequest | None:
    """The request of a stored job, when the row holds all of it (media bytes are not stored)."""
    spec = _spec(ctx)
    mode = spec.get("mode")
    if (
        spec.get("image")
        or spec.get("video")
        or mode not in ("image", "video", "remix", "storyboard")
    ):
        return None
    model = MODELS.get(str(spec.get("model"))) or Model(
        str(spec.get("model")),
        "image" if mode == "image" else "video",
        "",
        width=int(spec.get("width") or 0),
        height=int(spec.get("height") or 0),
        orientation=str(spec.get("orientation") or ""),
        seconds=int(spec.get("seconds") or 0),
    )
    prompt = str(spec.get("prompt") or "")
    return GenRequest(
        model=model,
        mode=str(mode),
        prompt=prompt,
        remix_target_id=spec.get("remix_target_id"),
        style_id=spec.get("style_id"),
        storyboard=parse_storyboard(prompt) if mode == "storyboard" else None,
        n=int(spec.get("n") or 1),
    )


async def resume_flow(ctx: JobContext) -> dict[str, Any]:
    """Continue a job from its stored phase after a restart; never send a create twice."""
    state = ctx.state
    create = state.get("create")
    if ctx.phase == SUBMITTING and not create and state.get("phase"):
        # Written by a version that did not record its create calls: it may have been sent.
        raise JobFailed(
            "interrupted",
            "The server restarted while this job was being submitted; it was not resubmitted "
            "(that could spend quota twice). Submit it again.",
        )
    if ctx.phase in ("", QUEUED) or (ctx.phase == SUBMITTING and not create):
        # No create was sent for this job: run it now when the row holds the whole request.
        req = _rebuild_request(ctx)
        if req is None:
            raise JobFailed(
                "interrupted",
                "The server restarted before this job reached Sora, and its uploaded media is not "
                "kept; it was not resubmitted. Submit it again.",
            )
        ctx.req = req
        if ctx.phase == SUBMITTING:
            await ctx.transition(QUEUED, token_id=None)
        await ctx.emit("processing", "started", "Restarted before reaching Sora; starting it now")
        return await run_flow(ctx)
    token_id = ctx.row.token_id
    if token_id is None:
        raise JobFailed("interrupted", f"The job stopped in phase {ctx.phase!r} without a token")
    kind = str(state.get("task_kind") or (create or {}).get("kind") or "video")
    follow = _follow_image if kind == "image" else _follow_video
    async with ctx.pool.lease(kind, token_id=int(token_id)) as lease:
        try:
            if ctx.phase == SUBMITTING:
                assert isinstance(create, dict)
                async with ctx.engine.create_lock(lease.token_id, str(create["prompt"])):
                    task_id = await find_task(
                        ctx,
                        lease.token_id,
                        kind,
                        str(create["prompt"]),
                        float(create["sent_at"]),
                        "the server stopped while it was in flight",
                        "interrupted",
                    )
                    await ctx.transition(
                        SUBMITTED,
                        upstream_task_id=task_id,
                        state={"task_id": task_id, "task_kind": kind},
                    )
            else:
                task_id = str(ctx.row.upstream_task_id or state.get("task_id") or "")
            await ctx.emit(
                "generation",
                "processing",
                f"Resumed after a server restart (phase {ctx.phase})",
                details={"task_id": task_id},
            )
            if ctx.phase == CACHING and isinstance(state.get("result"), dict):
                if kind == "image":
                    return await _finish_image(ctx, lease, state["result"])
                return await _finish_video(ctx, lease, state["result"])
            return await follow(ctx, lease, task_id)
        except UpstreamFailure as failure:
            await _report(ctx, lease, failure)
            raise
