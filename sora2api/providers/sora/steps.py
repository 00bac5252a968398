"""The steps every Sora flow shares: leasing and switching tokens, the single create, uploads,
following a task through the watcher, caching its files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import ApiError
from ...flows.request import MediaInput
from ...jobs import POLLING, QUEUED, SUBMITTED, SUBMITTING, JobContext, JobFailed
from ...pool import Lease
from ...upstream.errors import Kind, UpstreamFailure, may_have_created
from .reconcile import find_task

SubmitFn = Callable[[Lease], Awaitable[str]]
FollowFn = Callable[[JobContext, Lease, str], Awaitable[dict[str, Any]]]


# -- token switching -------------------------------------------------------------------------


async def _leased(ctx: JobContext, kind: str, submit: SubmitFn, follow: FollowFn) -> dict[str, Any]:
    """Lease a token, submit, follow; a failure that proves no task exists switches tokens."""
    tried: set[int] = set()
    switches = ctx.settings.current.upstream.max_token_switches
    while True:
        async with ctx.pool.lease(kind, exclude=tried, on_queued=ctx.on_queued) as lease:
            await ctx.transition(SUBMITTING, token_id=lease.token_id)
            try:
                task_id = await submit(lease)
            except UpstreamFailure as failure:
                await _report(ctx, lease, failure)
                # Only failures that came before any task existed get here (see _create).
                if failure.switch_token and len(tried) < switches:
                    tried.add(lease.token_id)
                    await ctx.transition(QUEUED, token_id=None, state={"create": None})
                    await ctx.emit(
                        "processing",
                        "processing",
                        f"Token failed ({failure.describe()}); retrying on another token",
                        details={"retry": len(tried), "error_type": failure.kind.value},
                    )
                    continue
                raise
            return await _following(ctx, lease, task_id, follow)


async def _report(ctx: JobContext, lease: Lease, failure: UpstreamFailure) -> None:
    """Tell the pool once per failure (a failure shared by many jobs counts once)."""
    if not failure.reported:
        await ctx.pool.report_failure(lease.token_id, failure)
        failure.reported = True


async def _following(
    ctx: JobContext, lease: Lease, task_id: str, follow: FollowFn
) -> dict[str, Any]:
    try:
        return await follow(ctx, lease, task_id)
    except UpstreamFailure as failure:
        await _report(ctx, lease, failure)
        raise


async def _create(
    ctx: JobContext,
    lease: Lease,
    kind: str,
    prompt: str,
    call: Callable[[], Awaitable[str]],
    label: str,
) -> str:
    """Send the create once. An answer that leaves open whether the task exists is reconciled
    against the account's lists; the task id is recorded in the same update as `submitted`."""
    async with ctx.engine.create_lock(lease.token_id, prompt):
        sent_at = time.time()
        # Written before sending: a restart then knows the create may have reached Sora.
        await ctx.save_state(create={"kind": kind, "prompt": prompt, "sent_at": sent_at})
        try:
            task_id = await call()
        except UpstreamFailure as failure:
            if not may_have_created(failure):
                raise
            await _report(ctx, lease, failure)
            task_id = await find_task(
                ctx, lease.token_id, kind, prompt, sent_at, failure.describe(), failure.kind.value
            )
        await ctx.transition(
            SUBMITTED, upstream_task_id=task_id, state={"task_id": task_id, "task_kind": kind}
        )
    await _task_started(ctx, task_id, label)
    return task_id


async def _upload(ctx: JobContext, call: Callable[[], Awaitable[str]]) -> str:
    """Uploads spend no quota: one that timed out or was cut off is sent once more (a second
    failure moves the job to another token like any token-level failure)."""
    try:
        return await call()
    except UpstreamFailure as failure:
        if failure.kind not in (Kind.TIMEOUT, Kind.TRANSPORT):
            raise
        await ctx.emit("upload", "processing", f"Upload failed ({failure.describe()}); retrying")
    return await call()


async def _upload_image(ctx: JobContext, lease: Lease, image: MediaInput, role: str) -> str:
    """Upload the request's image; image-to-image and image-to-video wrap the id differently."""
    await ctx.emit("upload", "started", f"Uploading the {role} image...")
    media_id = await _upload(
        ctx,
        lambda: ctx.client.upload_image(
            lease.access_token, image.data, image.filename, image.content_type, lease.proxy
        ),
    )
    await ctx.emit(
        "upload", "completed", f"The {role} image is uploaded", details={"media_id": media_id}
    )
    return media_id


async def _task_started(ctx: JobContext, task_id: str, label: str) -> None:
    details = {"task_id": task_id, "job_id": ctx.job_id}
    await ctx.emit("generation", "started", f"{label} generation started", 0.0, details)


async def _poll(
    ctx: JobContext, lease: Lease, task_id: str, kind: str, stage: str, label: str
) -> dict[str, Any]:
    """Wait for the watcher to report the task finished; progress events on the way."""
    up = ctx.settings.current.upstream
    timeout = up.image_timeout if kind == "image" else up.video_timeout
    watcher = ctx.engine.watchers.for_token(lease.token_id)
    queue = watcher.track(task_id, kind, since=ctx.row.created_at)
    await ctx.transition(POLLING)
    try:
        async with asyncio.timeout(timeout):
            while True:
                update = await queue.get()
                if update.state == "done":
                    assert update.data is not None
                    return update.data
                if update.state == "failed":
                    assert update.failure is not None
                    raise update.failure
                if update.state == "delayed":
                    # The task goes on upstream; the stream says why no progress comes meanwhile.
                    delay = {"task_id": task_id, "poll_delayed": True, "retry_in": update.retry_in}
                    await ctx.emit(stage, "processing", update.message, None, delay)
                    continue
                pct = update.progress * 100
                await ctx.progress(
                    stage,
                    pct,
                    f"{label} in progress: {int(pct)}% completed...",
                    {"task_status": update.status, "task_id": task_id},
                )
    except TimeoutError:
        trouble = watcher.trouble
        why = f"; status polling was failing: {trouble.describe()}" if trouble else ""
        raise UpstreamFailure(
            Kind.TIMEOUT, f"generation exceeded the {timeout:g} s limit{why}", endpoint="poll"
        ) from None
    finally:
        watcher.untrack(task_id)


def _proxy(ctx: JobContext, lease: Lease) -> str | None:
    """Media downloads take the same way out as the API calls: the token's proxy, else the global."""
    return lease.proxy or ctx.settings.current.upstream.proxy or None


async def _cache(ctx: JobContext, lease: Lease, urls: list[str], ext: str) -> list[str]:
    """Download results into the media cache; a failure is a clear error, never a silent link."""
    await ctx.emit(
        "cache", "started", f"Caching {len(urls)} file(s)...", 100.0, {"count": len(urls)}
    )
    names: list[str] = []
    for url in urls:
        try:
            cached = await ctx.media.store_url(url, ext=ext, proxy=_proxy(ctx, lease))
        except ApiError as exc:
            raise JobFailed("cache_failed", exc.message) from None
        names.append(cached.name)
    await ctx.save_state(files=names)
    await ctx.emit("cache", "completed", "Files cached", 100.0, {"count": len(names)})
    return [ctx.media.url_for(n) for n in names]
