"""The video flows: text/image to video, remix, storyboard, and the watermark-free file."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import ApiError
from ...flows.results import video_result
from ...jobs import CACHING, JobContext, JobFailed
from ...pool import Lease
from ...upstream.errors import Kind, UpstreamFailure
from .steps import _cache, _create, _leased, _poll, _proxy, _upload_image

log = logging.getLogger(__name__)


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
