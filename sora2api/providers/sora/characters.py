"""The character flows: create a character, or a temporary one starring in a video."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from ...flows.results import character_result
from ...jobs import SUBMITTING, JobContext, JobFailed
from ...pool import Lease
from ...upstream.errors import Kind, UpstreamFailure
from .steps import _create, _following, _report, _upload
from .video import _call, _follow_video, _video_payload


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
