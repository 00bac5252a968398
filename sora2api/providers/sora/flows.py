"""The generation flows: image, video (t2v, i2v, remix, storyboard), character, watermark-free.

Each flow leases a token, submits once, then follows the task through the token's watcher. The
job moves through the engine's phases (queued, submitting, submitted, polling, caching), each
written with its data, so a restart continues from the phase it stopped in. A failure that proves
no task was created moves the job to another token; a create whose answer leaves that open is
reconciled against the account's task lists, never resent (that could spend the quota twice).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ...errors import ApiError
from ...flows.request import GenRequest, MediaInput
from ...flows.results import character_result, image_result, video_result
from ...jobs import CACHING, POLLING, QUEUED, SUBMITTED, SUBMITTING, JobContext, JobFailed
from ...models import MODELS, Model
from ...pool import Lease
from ...upstream.errors import Kind, UpstreamFailure, may_have_created
from .prompts import parse_storyboard
from .reconcile import find_task

log = logging.getLogger(__name__)

SubmitFn = Callable[[Lease], Awaitable[str]]
FollowFn = Callable[[JobContext, Lease, str], Awaitable[dict[str, Any]]]


def _spec(ctx: JobContext) -> dict[str, Any]:
    spec: dict[str, Any] = orjson.loads(ctx.row.request)
    return spec


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


# -- images ----------------------------------------------------------------------------------


async def _image(ctx: JobContext) -> dict[str, Any]:
    req = ctx.req
    assert req is not None

    async def submit(lease: Lease) -> str:
        inpaint: list[dict[str, Any]] = []
        if req.image is not None:
            media_id = await _upload_image(ctx, lease, req.image, "reference")
            inpaint = [{"type": "image", "frame_index": 0, "upload_media_id": media_id}]
        payload = {
            "type": "image_gen",
            "operation": "remix" if inpaint else "simple_compose",
            "prompt": req.prompt,
            "width": req.model.width,
            "height": req.model.height,
            "n_variants": req.n,
            "n_frames": 1,
            "inpaint_items": inpaint,
        }
        return await _create(
            ctx,
            lease,
            "image",
            req.prompt,
            lambda: ctx.client.create_image(lease.access_token, payload, lease.proxy),
            "Image",
        )

    return await _leased(ctx, "image", submit, _follow_image)


async def _follow_image(ctx: JobContext, lease: Lease, task_id: str) -> dict[str, Any]:
    task = await _poll(ctx, lease, task_id, "image", "generation", "Image generation")
    await ctx.transition(CACHING, state={"result": task})
    return await _finish_image(ctx, lease, task)


async def _finish_image(ctx: JobContext, lease: Lease, task: dict[str, Any]) -> dict[str, Any]:
    urls = [
        str(g["url"]) for g in task.get("generations") or [] if isinstance(g, dict) and g.get("url")
    ]
    if not urls:
        raise UpstreamFailure(
            Kind.MALFORMED, "the image task succeeded without any image", endpoint="task"
        )
    await ctx.pool.report_success(lease.token_id, "image")
    await ctx.emit(
        "generation",
        "completed",
        f"{len(urls)} image(s) generated",
        100.0,
        {"image_count": len(urls)},
    )
    return image_result(await _cache(ctx, lease, urls, "png"))


# -- videos ----------------------------------------------------------------------------------


def _video_payload(
    spec: dict[str, Any], prompt: str, inpaint: list[dict[str, Any]], model: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "kind": "video",
        "prompt": prompt,
        "orientation": model.orientation,
        "size": "small",
        "n_frames": model.n_frames,
        "model": "sy_8",
        "inpaint_items": inpaint,
    }
    if spec.get("style_id"):
        payload["style_id"] = spec["style_id"]
    return payload


async def _video(ctx: JobContext, *, prompt: str | None = None) -> dict[str, Any]:
    req = ctx.req
    assert req is not None
    spec = req.describe()

    async def submit(lease: Lease) -> str:
        inpaint: list[dict[str, Any]] = []
        if req.image is not None:
            media_id = await _upload_image(ctx, lease, req.image, "start")
            inpaint = [{"kind": "upload", "upload_id": media_id}]
        at, proxy = lease.access_token, lease.proxy
        if req.mode == "remix":
            await ctx.emit(
                "remix",
                "started",
                f"Remixing {req.remix_target_id}...",
                details={"remix_target_id": req.remix_target_id},
            )
            payload: dict[str, Any] = {
                "kind": "video",
                "prompt": req.prompt,
                "inpaint_items": [],
                "remix_target_id": req.remix_target_id,
                "cameo_ids": [],
                "cameo_replacements": {},
                "model": "sy_8",
                "orientation": req.model.orientation,
                "n_frames": req.model.n_frames,
            }
            if req.style_id:
                payload["style_id"] = req.style_id
            return await _create(
                ctx,
                lease,
                "video",
                req.prompt,
                _call(ctx.client.create_video, at, payload, proxy),
                "Video",
            )
        if req.mode == "storyboard":
            assert req.storyboard is not None
            await ctx.emit(
                "storyboard",
                "started",
                f"Storyboard with {len(req.storyboard.shots)} shot(s)",
                details={
                    "shots": len(req.storyboard.shots),
                    "seconds": req.storyboard.total_seconds,
                },
            )
            payload = _video_payload(spec, req.storyboard.backend_prompt(), inpaint, req.model)
            payload.update(
                title="Draft your video",
                storyboard_id=None,
                remix_target_id=None,
                metadata=None,
                style_id=req.style_id,
                cameo_ids=None,
                cameo_replacements=None,
                audio_caption=None,
                audio_transcript=None,
                video_caption=None,
            )
            return await _create(
                ctx,
                lease,
                "video",
                payload["prompt"],
                _call(ctx.client.create_storyboard, at, payload, proxy),
                "Video",
            )
        payload = _video_payload(spec, prompt or req.prompt, inpaint, req.model)
        return await _create(
            ctx,
            lease,
            "video",
            payload["prompt"],
            _call(ctx.client.create_video, at, payload, proxy),
            "Video",
        )

    return await _leased(ctx, "video", submit, _follow_video)


def _call(
    create: Callable[[str, dict[str, Any], str | None], Awaitable[str]],
    at: str,
    payload: dict[str, Any],
    proxy: str | None,
) -> Callable[[], Awaitable[str]]:
    return lambda: create(at, payload, proxy)


async def _follow_video(ctx: JobContext, lease: Lease, task_id: str) -> dict[str, Any]:
    draft = await _poll(ctx, lease, task_id, "video", "generation", "Video generation")
    await ctx.pool.report_success(lease.token_id, "video")
    # The generation id is kept for later: a remix of this video publishes the draft by it.
    generation_id = draft.get("id") or draft.get("generation_id")
    await ctx.transition(CACHING, state={"result": draft, "generation_id": generation_id})
    await ctx.emit(
        "generation", "completed", "Video generated", 100.0, {"generation_id": draft.get("id")}
    )
    await _refresh_quota(ctx, lease)
    return await _finish_video(ctx, lease, draft)


async def _finish_video(ctx: JobContext, lease: Lease, draft: dict[str, Any]) -> dict[str, Any]:
    await _cache_thumbnail(ctx, lease, draft)
    source = str(draft.get("downloadable_url") or draft.get("url"))
    if ctx.settings.current.generation.watermark_free:
        clean = await _watermark_free(ctx, lease, draft)
        if clean is not None:
            return video_result(clean, watermark_free=True)
    urls = await _cache(ctx, lease, [source], "mp4")
    return video_result(urls[0])


async def _cache_thumbnail(ctx: JobContext, lease: Lease, draft: dict[str, Any]) -> None:
    """Best effort: the draft's thumbnail for GET /v1/videos/{id}/content?variant=thumbnail."""
    encodings = draft.get("encodings")
    thumb = encodings.get("thumbnail") if isinstance(encodings, dict) else None
    url = thumb.get("path") if isinstance(thumb, dict) else None
    if not isinstance(url, str) or not url:
        return
    suffix = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
    try:
        cached = await ctx.media.store_url(
            url,
            ext=suffix if suffix in ("png", "jpg", "jpeg", "webp") else "jpg",
            proxy=_proxy(ctx, lease),
            max_bytes=16 << 20,
            timeout=30.0,
        )
    except ApiError as exc:
        log.info("job %s: no thumbnail cached: %s", ctx.job_id, exc.message)
        # Kept with the job, so the thumbnail route says what happened instead of "none given".
        await ctx.save_state(thumbnail_error=exc.message)
        return
    await ctx.save_state(thumbnail=cached.name)


async def _refresh_quota(ctx: JobContext, lease: Lease) -> None:
    """Read the remaining video quota after each video; a token at 0 rests until its reset."""
    if ctx.engine.after_video is not None:
        await ctx.engine.after_video(lease.token_id)


async def _watermark_free(ctx: JobContext, lease: Lease, draft: dict[str, Any]) -> str | None:
    """Publish, resolve the clean file, cache it, and always delete the post again.
    Returns the cached URL, or None to fall back to the normal video (when allowed)."""
    gen = ctx.settings.current.generation
    await ctx.emit("watermark_free", "started", "Publishing to get the watermark-free file...")
    try:
        generation_id = draft.get("id") or draft.get("generation_id")
        if not generation_id:
            raise UpstreamFailure(
                Kind.MALFORMED, "the draft has no generation id", endpoint="drafts"
            )
        post_id = await ctx.client.publish(lease.access_token, str(generation_id), lease.proxy)
        # The engine deletes the post when the job ends, however it ends (a restart included).
        await ctx.record_cleanup("post", post_id, lease.token_id)
        await ctx.emit(
            "watermark_free",
            "processing",
            "Post published; resolving the clean file",
            details={"post_id": post_id, "parse_method": gen.watermark_parse_method},
        )
        if gen.watermark_parse_method == "custom":
            if not gen.watermark_custom_url:
                raise JobFailed(
                    "config", "watermark_parse_method is 'custom' but watermark_custom_url is empty"
                )
            link = await ctx.client.custom_parse(
                gen.watermark_custom_url,
                f"https://sora.chatgpt.com/p/{post_id}",
                gen.watermark_custom_token,
            )
        else:
            link = ctx.settings.current.upstream.third_party_url.replace("{post_id}", post_id)
        urls = await _cache(ctx, lease, [link], "mp4")
        await ctx.emit("watermark_free", "completed", "Watermark-free video ready")
        return urls[0]
    except (UpstreamFailure, JobFailed, ApiError) as exc:
        reason = exc.describe() if isinstance(exc, UpstreamFailure) else exc.message
        if not gen.watermark_fallback:
            raise JobFailed(
                "watermark_free_failed", f"Watermark-free processing failed: {reason}"
            ) from None
        await ctx.emit(
            "watermark_free",
            "error",
            f"Watermark-free processing failed ({reason}); falling back to the normal video",
            details={"fallback": True},
        )
        return None


# -- characters ------------------------------------------------------------------------------


async def _create_character(ctx: JobContext, lease: Lease, *, public: bool) -> dict[str, Any]:
    req = ctx.req
    assert req is not None and req.video is not None
    opts = req.character
    at, proxy = lease.access_token, lease.proxy
    await ctx.emit("character_creation", "started", "Uploading the character video...")
    video = req.video
    cameo_id = await _upload(
        ctx,
        lambda: ctx.client.upload_cameo_video(at, video.data, opts.get("timestamps", "0,3"), proxy),
    )
    await ctx.save_state(cameo_id=cameo_id)
    await ctx.emit(
        "character_creation",
        "processing",
        "Video uploaded; Sora is processing the character",
        details={"cameo_id": cameo_id},
    )
    status = await _wait_cameo(ctx, lease, cameo_id)
    hint = str(status.get("username_hint") or "character")
    username = opts.get("username") or f"{hint.rsplit('.', 1)[-1]}{random.randint(100, 999)}"
    username = await _free_username(ctx, lease, username, explicit="username" in opts)
    display_name = opts.get("display_name") or str(status.get("display_name_hint") or "Character")
    asset_url = status.get("profile_asset_url")
    if not asset_url:
        raise UpstreamFailure(
            Kind.MALFORMED, "the finished character has no profile image", endpoint="cameo"
        )
    avatar = await ctx.client.download(str(asset_url), proxy=proxy)
    pointer = await ctx.client.upload_profile_asset(at, avatar, proxy)
    instructions = (
        opts.get("instruction_set")
        or status.get("instruction_set_hint")
        or status.get("instruction_set")
    )
    safety = opts.get("safety_instruction_set")
    body = {
        "cameo_id": cameo_id,
        "username": username,
        "display_name": display_name,
        "profile_asset_pointer": pointer,
        "instruction_set": {"value": [{"type": "text", "value": str(instructions)}]}
        if instructions
        else None,
        "safety_instruction_set": {"value": [{"type": "text", "value": safety}]}
        if safety
        else None,
    }
    character_id = await ctx.client.finalize_character(at, body, proxy)
    if not public:
        # A temporary character: deleted when the job ends, however it ends.
        await ctx.record_cleanup("character", character_id, lease.token_id)
    visibility = "private"
    if public:
        await ctx.client.update_cameo(at, cameo_id, {"visibility": "public"}, proxy)
        visibility = "public"
    await ctx.save_state(character_id=character_id, username=username)
    await ctx.engine.store.characters.add(
        token_id=lease.token_id,
        cameo_id=cameo_id,
        character_id=character_id,
        username=username,
        display_name=display_name,
        visibility=visibility,
        job_id=ctx.job_id,
        created_at=time.time(),
    )
    await ctx.emit(
        "character_creation",
        "completed",
        f"Character @{username} created",
        details={"username": username, "cameo_id": cameo_id, "character_id": character_id},
    )
    return character_result(username, display_name, cameo_id, character_id)


async def _wait_cameo(ctx: JobContext, lease: Lease, cameo_id: str) -> dict[str, Any]:
    interval = max(ctx.settings.current.upstream.poll_interval * 2, 0.05)
    errors = 0
    async with asyncio.timeout(ctx.settings.current.upstream.video_timeout):
        while True:
            await asyncio.sleep(interval)
            try:
                status = await ctx.client.cameo_status(lease.access_token, cameo_id, lease.proxy)
            except UpstreamFailure as exc:
                errors += 1
                if errors >= 3 or not exc.switch_token:
                    raise
                continue
            errors = 0
            state = str(status.get("status") or "")
            if state in ("failed", "error"):
                raise UpstreamFailure(
                    Kind.BAD_REQUEST,
                    str(status.get("status_message") or "character processing failed"),
                    endpoint="cameo",
                )
            if status.get("status_message") == "Completed" or state == "finalized":
                return status


async def _free_username(ctx: JobContext, lease: Lease, wanted: str, *, explicit: bool) -> str:
    name = wanted
    for _ in range(5):
        if await ctx.client.username_check(lease.access_token, name, lease.proxy):
            return name
        if explicit:
            raise JobFailed("username_taken", f"The username {wanted!r} is already taken on Sora")
        name = f"{wanted.rstrip('0123456789')}{random.randint(100, 999)}"
    return f"{wanted.rstrip('0123456789')}{int(time.time()) % 1_000_000}"


async def _character(ctx: JobContext) -> dict[str, Any]:
    async with ctx.pool.lease("video", on_queued=ctx.on_queued) as lease:
        await ctx.transition(SUBMITTING, token_id=lease.token_id)
        try:
            return await _create_character(ctx, lease, public=True)
        except UpstreamFailure as failure:
            await _report(ctx, lease, failure)
            raise


async def _character_video(ctx: JobContext) -> dict[str, Any]:
    """Create a temporary character and generate a video starring it; the engine deletes the
    character when the job ends."""
    req = ctx.req
    assert req is not None
    async with ctx.pool.lease("video", on_queued=ctx.on_queued) as lease:
        await ctx.transition(SUBMITTING, token_id=lease.token_id)
        try:
            char = await _create_character(ctx, lease, public=False)
            spec = req.describe()
            payload = _video_payload(
                {**spec, "style_id": req.style_id},
                f"@{char['username']} {req.prompt}",
                [],
                req.model,
            )
            call = _call(ctx.client.create_video, lease.access_token, payload, lease.proxy)
            task_id = await _create(ctx, lease, "video", payload["prompt"], call, "Video")
        except UpstreamFailure as failure:
            await _report(ctx, lease, failure)
            raise
        return await _following(ctx, lease, task_id, _follow_video)


# -- entry points ----------------------------------------------------------------------------


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
