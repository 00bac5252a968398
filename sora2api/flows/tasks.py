"""The generic flow of a provider job: lease an account serving the model, submit once, poll the
task on that account, cache the result. Any provider behind providers/base.py runs through it.

The create is recorded before it is sent. A refusal that proves nothing was created (429, 401,
quota, a connection never opened) moves the job to another account; an answer that leaves it open
(5xx, garbage, a timeout, a reset) fails the job with the reason and is never resent, since that
could spend the user's quota twice. Polls go to the account that created the task, one in flight
per task, through the account's poll limits; a poll error backs off and never fails the job on
its own (a verdict on the key, or the job's time limit, does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import ClientSession

from .. import registry
from ..errors import ApiError, NotFoundError
from ..jobs import CACHING, POLLING, QUEUED, SUBMITTED, SUBMITTING, JobContext, JobFailed
from ..pool import Lease
from ..providers.base import Account, ImageInput, ModelSpec, Output, Provider, Submission
from ..upstream.errors import Kind, UpstreamFailure, may_have_created
from .request import GenRequest
from .results import video_result

log = logging.getLogger(__name__)

# Consecutive "not found" answers to polls after which the task is taken as gone upstream.
_GONE_AFTER = 5
# Poll backoff after errors, at most this long.
_MAX_BACKOFF = 60.0
# Without a percentage, a "still in this stage" event at most this often.
_STAGE_EVERY = 5.0
# Downloads of a finished task's file tried this many times (links can lag the status).
_DOWNLOADS = 3
_CANCEL_TIMEOUT = 15.0
_STAGE_WORDS = {"queued": "Queued upstream", "running": "Generating"}


def _session(ctx: JobContext) -> ClientSession:
    http = ctx.engine.http
    if http is None:
        raise JobFailed("config", "The job engine has no HTTP session for provider calls")
    return http


def _account(ctx: JobContext, token_id: int) -> tuple[Account, Provider]:
    """The account (as stored now: a key may be replaced meanwhile) and its provider."""
    try:
        row = ctx.pool.state(token_id).token
    except NotFoundError:
        raise JobFailed(
            "account_deleted", f"Account {token_id}, which holds this job's task, was deleted"
        ) from None
    account = Account(row.id, row.provider, row.access_token, row.base_url, row.proxy or None)
    return account, registry.provider(row.provider)


def _account_spec(ctx: JobContext, token_id: int, model_id: str) -> ModelSpec:
    """The model as this account's provider serves it (its own upstream name)."""
    row = ctx.pool.state(token_id).token
    for spec in registry.account_models(row):
        if spec.id == model_id:
            return spec
    raise JobFailed("model_not_served", f"Account {token_id} no longer serves {model_id}")


def _submission(req: GenRequest, spec: ModelSpec) -> Submission:
    model = req.model
    images: tuple[ImageInput, ...] = ()
    if req.image is not None:
        images = (ImageInput(req.image.data, req.image.content_type),)
    return Submission(
        model=spec,
        prompt=req.prompt,
        seconds=model.seconds or None,
        size=f"{model.width}x{model.height}" if model.width and model.height else None,
        images=images,
        remix_of=req.remix_target_id if req.mode == "remix" else None,
        options=dict(req.options),
    )


async def _report(ctx: JobContext, token_id: int, failure: UpstreamFailure) -> None:
    if not failure.reported:
        await ctx.pool.report_failure(token_id, failure)
        failure.reported = True


# -- submit ----------------------------------------------------------------------------------


async def _not_the_source(ctx: JobContext, req: GenRequest) -> set[int]:
    """For a remix, every account but the one holding the source task (upstream ids are per
    account); nothing otherwise."""
    if req.mode != "remix":
        return set()
    source_id = str(ctx.row.remixed_from or "")
    try:
        source = await ctx.engine.get(source_id)
    except NotFoundError:
        source = None
    if source is None or source.token_id is None:
        raise JobFailed("remix_unavailable", f"The source video {source_id} is gone")
    return {t.id for t in ctx.pool.tokens() if t.id != int(source.token_id)}


async def run_task_flow(ctx: JobContext) -> dict[str, Any]:
    """A provider job from the start: lease, submit once, follow, cache."""
    req = ctx.req
    assert req is not None and req.spec is not None
    await ctx.emit(
        "generation",
        "started",
        "Initializing generation request...",
        details={"job_id": ctx.job_id, "mode": req.mode, "provider": req.spec.provider},
    )
    tried: set[int] = set()
    switches = ctx.settings.current.upstream.max_token_switches
    others = await _not_the_source(ctx, req)
    while True:
        async with ctx.pool.lease(
            "video", exclude=tried | others, on_queued=ctx.on_queued, model=req.model.id
        ) as lease:
            await ctx.transition(SUBMITTING, token_id=lease.token_id)
            try:
                task_id = await _create(ctx, lease, req)
            except UpstreamFailure as failure:
                await _report(ctx, lease.token_id, failure)
                if failure.switch_token and len(tried) < switches:
                    tried.add(lease.token_id)
                    await ctx.transition(QUEUED, token_id=None, state={"create": None})
                    await ctx.emit(
                        "processing",
                        "processing",
                        f"Account failed ({failure.describe()}); retrying on another account",
                        details={"retry": len(tried), "error_type": failure.kind.value},
                    )
                    continue
                raise
            return await following(ctx, lease, task_id)


async def _create(ctx: JobContext, lease: Lease, req: GenRequest) -> str:
    """Send the create once and record the task id with the account in the same update."""
    account, provider = _account(ctx, lease.token_id)
    sub = _submission(req, _account_spec(ctx, lease.token_id, req.model.id))
    # Written before sending: a restart then knows the create may have reached the upstream.
    await ctx.save_state(create={"provider": provider.name, "sent_at": time.time()})
    try:
        task_id = await provider.submit(_session(ctx), account, sub)
    except UpstreamFailure as failure:
        if may_have_created(failure):
            await _report(ctx, lease.token_id, failure)
            raise JobFailed(
                failure.kind.value,
                f"{failure.describe()}. The create call may have reached the upstream, so it was "
                "not sent again (that could spend quota twice); check the account before "
                "resubmitting.",
            ) from None
        raise
    await ctx.transition(
        SUBMITTED,
        upstream_task_id=task_id,
        state={"task_id": task_id, "task_kind": "video", "provider": provider.name},
    )
    await ctx.emit(
        "generation",
        "started",
        "Video generation started",
        0.0,
        {"task_id": task_id, "job_id": ctx.job_id},
    )
    return task_id


# -- follow ----------------------------------------------------------------------------------


async def following(ctx: JobContext, lease: Lease, task_id: str) -> dict[str, Any]:
    """Follow the task; a cancelled job (or one out of time) stops it upstream too."""
    try:
        output = await _poll(ctx, lease, task_id)
        return await _finish(ctx, lease, output)
    except asyncio.CancelledError:
        if not ctx.engine.closing:  # at shutdown the task goes on and the restart resumes it
            await _cancel_upstream(ctx, lease.token_id, task_id)
        raise
    except UpstreamFailure as failure:
        await _report(ctx, lease.token_id, failure)
        if failure.kind is Kind.TIMEOUT and failure.endpoint == "poll":
            await _cancel_upstream(ctx, lease.token_id, task_id)
        raise


async def _cancel_upstream(ctx: JobContext, token_id: int, task_id: str) -> None:
    """Best effort, shielded from the job's own cancellation."""
    try:
        account, provider = _account(ctx, token_id)
        async with asyncio.timeout(_CANCEL_TIMEOUT):
            await asyncio.shield(provider.cancel(_session(ctx), account, task_id))
    except (UpstreamFailure, JobFailed, TimeoutError) as exc:
        reason = exc.describe() if isinstance(exc, UpstreamFailure) else str(exc)
        log.warning("job %s: could not cancel task %s upstream: %s", ctx.job_id, task_id, reason)
        return
    log.info("job %s: task %s cancelled upstream", ctx.job_id, task_id)


def _interval(ctx: JobContext, provider: Provider) -> float:
    # [upstream] poll_interval caps every provider's own interval (tests and impatient admins).
    return max(0.05, min(provider.poll_interval, ctx.settings.current.upstream.poll_interval))


async def _poll(ctx: JobContext, lease: Lease, task_id: str) -> Output:
    """Poll until the task completes; progress events on the way. Returns its first output."""
    timeout = ctx.settings.current.upstream.video_timeout
    if ctx.phase != CACHING:  # a job resumed while caching asks once more for a fresh link
        await ctx.transition(POLLING)
    _, provider = _account(ctx, lease.token_id)
    interval = _interval(ctx, provider)
    delay = 0.0
    errors = gone = 0
    stage, stage_since, stage_said = "", time.monotonic(), 0.0
    trouble: UpstreamFailure | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                await asyncio.sleep(delay)
                delay = interval
                account, provider = _account(ctx, lease.token_id)
                try:
                    async with ctx.engine.poll_limits.slot(lease.token_id):
                        status = await provider.status(_session(ctx), account, task_id)
                except UpstreamFailure as failure:
                    if failure.kind in (Kind.TOKEN_INVALID, Kind.TOKEN_EXPIRED):
                        raise  # a verdict on the key: the job cannot go on with it
                    gone = gone + 1 if failure.kind is Kind.NOT_FOUND else 0
                    if gone >= _GONE_AFTER:
                        raise JobFailed(
                            "task_gone",
                            f"The upstream no longer knows task {task_id}: {failure.describe()}",
                        ) from None
                    if failure.kind is Kind.RATE_LIMITED:
                        await ctx.pool.report_failure(lease.token_id, failure)
                    errors += 1
                    trouble = failure
                    delay = min(
                        _MAX_BACKOFF, max(interval * 2 ** min(errors, 6), failure.retry_after or 0)
                    )
                    await ctx.emit(
                        "generation",
                        "processing",
                        f"Status poll failed ({failure.describe()}); the task goes on upstream, "
                        f"next poll in {delay:.0f} s",
                        None,
                        {"task_id": task_id, "poll_delayed": True, "retry_in": round(delay, 1)},
                    )
                    continue
                errors = gone = 0
                if status.retry_after:
                    delay = max(delay, min(status.retry_after, _MAX_BACKOFF))
                if status.state == "completed":
                    if not status.outputs:
                        raise UpstreamFailure(
                            Kind.MALFORMED, "the task completed without any output", endpoint="poll"
                        )
                    await ctx.pool.report_success(lease.token_id, "video")
                    # The upstream's own usage figure goes with the job (usage reports sum it).
                    usage = orjson.dumps(dict(status.usage)).decode() if status.usage else None
                    await ctx.transition(
                        CACHING, state={"usage": status.usage}, upstream_usage=usage
                    )
                    await ctx.emit(
                        "generation", "completed", "Video generated", 100.0, {"task_id": task_id}
                    )
                    return status.outputs[0]
                if status.state == "failed":
                    raise status.failure or UpstreamFailure(
                        Kind.BAD_REQUEST, f"the task {status.stage or 'failed'}", endpoint="poll"
                    )
                if status.state == "cancelled":
                    reason = status.failure.message if status.failure else "cancelled upstream"
                    raise JobFailed(
                        "cancelled_upstream", f"The upstream cancelled the task: {reason}"
                    )
                now = time.monotonic()
                word = status.stage or status.state
                if word != stage:
                    stage, stage_since, stage_said = word, now, 0.0
                details = {"task_status": word, "task_id": task_id}
                if status.progress is not None:
                    pct = status.progress * 100
                    await ctx.progress(
                        "generation",
                        pct,
                        f"Video generation in progress: {int(pct)}% completed...",
                        details,
                    )
                elif stage_said == 0.0 or now - stage_said >= _STAGE_EVERY:
                    # Never a made-up percentage: the stage, and for how long.
                    stage_said = now
                    held = int(now - stage_since)
                    label = _STAGE_WORDS.get(status.state, "In progress")
                    await ctx.emit(
                        "generation",
                        "processing",
                        f"{label} (upstream status: {word}) for {held} s",
                        None,
                        {**details, "stage_seconds": held},
                    )
    except TimeoutError:
        why = f"; status polling was failing: {trouble.describe()}" if errors and trouble else ""
        raise UpstreamFailure(
            Kind.TIMEOUT, f"generation exceeded the {timeout:g} s limit{why}", endpoint="poll"
        ) from None


# -- result ----------------------------------------------------------------------------------


def _ext(content_type: str) -> str:
    sub = content_type.split(";", 1)[0].rsplit("/", 1)[-1].strip().lower()
    return {"quicktime": "mov", "jpeg": "jpg"}.get(sub, sub or "mp4")


async def _finish(ctx: JobContext, lease: Lease, output: Output) -> dict[str, Any]:
    """Cache the file (with the account's headers, on its own origin) and build the result."""
    await ctx.emit("cache", "started", "Caching 1 file(s)...", 100.0, {"count": 1})
    account, _ = _account(ctx, lease.token_id)
    proxy = account.proxy or ctx.settings.current.upstream.proxy or None
    ext = _ext(output.content_type)
    name = None
    for attempt in range(_DOWNLOADS):
        try:
            if output.path is not None:
                name = await _adopt(ctx, output.path, ext)
            elif output.url is not None:
                cached = await ctx.media.store_url(
                    output.url,
                    ext=ext,
                    proxy=proxy,
                    headers=output.headers,
                    trusted=account.base_url or None,
                )
                name = cached.name
            else:
                raise JobFailed("cache_failed", "The finished task has neither a URL nor a file")
            break
        except ApiError as exc:
            if attempt + 1 >= _DOWNLOADS or exc.status < 500:
                raise JobFailed("cache_failed", exc.message) from None
            await ctx.emit("cache", "processing", f"{exc.message}; trying again")
            await asyncio.sleep(ctx.settings.current.upstream.poll_interval * (attempt + 1))
    assert name is not None
    await ctx.save_state(files=[name])
    await ctx.emit("cache", "completed", "Files cached", 100.0, {"count": 1})
    return video_result(ctx.media.url_for(name))


async def _adopt(ctx: JobContext, path: str, ext: str) -> str:
    """A file the provider already wrote (inline data), moved into the cache through its own
    checks (size, first bytes, disk budget) without reading it into memory."""
    return (await ctx.media.adopt_file(path, ext=ext)).name
