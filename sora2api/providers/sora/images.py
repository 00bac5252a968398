"""The image flow: upload a reference, create, follow, cache."""

from __future__ import annotations

from typing import Any

from ...flows.results import image_result
from ...jobs import CACHING, JobContext
from ...pool import Lease
from ...upstream.errors import Kind, UpstreamFailure
from .steps import _cache, _create, _leased, _poll, _upload_image


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
