"""The OpenAI Images API on the job engine: generations, edits, and any image job by its id."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from aiohttp import web

from .. import keys
from ..errors import BadRequestError, TimeoutError_, as_api_error, json_response
from ..flows.openai_request import parse_image_request, row_spec
from ..jobs import JobEngine, JobFailed
from ..reqlog import READY_JOB
from ..store import JobRow
from ..viewcache import FINAL
from ..webhooks import parse_webhook_url
from .common import input_guard, read_object, submit
from .videos import GoneError, live_progress, public_status, typed_job


async def _data(engine: JobEngine, row: JobRow, response_format: str) -> list[dict[str, Any]]:
    state: dict[str, Any] = orjson.loads(row.state or "{}")
    names = [str(n) for n in state.get("files") or []]
    out = []
    for name in names:
        path = engine.media.resolve(name)
        if path is None:  # for url too: a 200 carrying links that 404 would hide it
            raise GoneError(
                f"The images of {row.id} have expired from the media cache ([storage] media_ttl)"
            )
        if response_format == "url":
            out.append({"url": engine.media.url_for(name), "revised_prompt": None})
            continue
        data = await asyncio.to_thread(path.read_bytes)
        out.append({"b64_json": base64.b64encode(data).decode(), "revised_prompt": None})
    return out


def _size(row: JobRow) -> str | None:
    spec = row_spec(row)
    return f"{spec['width']}x{spec['height']}" if spec.get("width") and spec.get("height") else None


async def _generate(request: web.Request, *, edit: bool) -> web.Response:
    engine = request.app[keys.JOBS]
    fields = await read_object(request, form=True)
    webhook_url = parse_webhook_url(fields)
    parsed = await parse_image_request(fields, input_guard(request), edit=edit)
    run = await submit(request, parsed.req, api="images", webhook_url=webhook_url)
    try:
        await engine.wait(run, engine.job_timeout("image"))
    except TimeoutError:
        raise TimeoutError_(
            f"Job {run.job_id} is still running; fetch it later with GET /v1/images/{run.job_id}"
        ) from None
    if run.error is not None or run.result is None:
        raise as_api_error(
            run.error or JobFailed("internal_error", "The job ended without a result")
        )
    row = await engine.get(run.job_id)
    return json_response(
        {
            "created": int(row.created_at),
            "data": await _data(engine, row, parsed.response_format),
            # The real output size (Sora renders at 360 px), and the job id to fetch it again.
            "size": _size(row),
            "job_id": row.id,
        }
    )


async def generations(request: web.Request) -> web.Response:
    """POST /v1/images/generations {model, prompt, n, size, response_format}."""
    return await _generate(request, edit=False)


async def edits(request: web.Request) -> web.Response:
    """POST /v1/images/edits (multipart image + prompt, or JSON with an image URL)."""
    return await _generate(request, edit=True)


async def get_image(request: web.Request) -> web.Response:
    """GET /v1/images/{id}?response_format=: any image job (chat-created too) in the images shape.
    A finished job's url answer is kept ready (engine.views), as for GET /v1/videos/{id}."""
    engine = request.app[keys.JOBS]
    fmt = request.query.get("response_format") or "url"
    if fmt not in ("url", "b64_json"):
        raise BadRequestError(
            "Query parameter 'response_format' must be url or b64_json", param="response_format"
        )
    # Only links are kept: base64 answers are megabytes each. The kept answers are not per key:
    # a created key's poll reads the row (and its owner).
    cached = fmt == "url" and keys.REQ_KEY not in request
    settings = engine.settings.current
    job_id = request.match_info["id"]
    body = engine.views.get(job_id, "image", settings) if cached else None
    if body is not None:
        request[READY_JOB] = job_id  # logged as a counted row (see reqlog.READY_JOB)
        return web.Response(body=body, content_type="application/json")
    epoch = engine.views.epoch
    row = await typed_job(request, "image")
    status, error = public_status(engine, row)
    completed = row.status == "completed"
    body = orjson.dumps(
        {
            "id": row.id,
            "object": "image.job",
            "created": int(row.created_at),
            "model": row.model,
            "status": status,
            "progress": live_progress(engine, row),
            "prompt": row.prompt or "",
            "size": _size(row),
            "data": await _data(engine, row, fmt) if completed else [],
            "error": error,
        }
    )
    if cached and row.status in FINAL:
        # Links hold until the first file expires; from then on the answer is a 410.
        engine.views.put(row.id, "image", body, settings, _files_expire(engine, row), epoch)
    return web.Response(body=body, content_type="application/json")


def _files_expire(engine: JobEngine, row: JobRow) -> float | None:
    state: dict[str, Any] = orjson.loads(row.state or "{}")
    expiries = [engine.media.expires_at(str(n)) for n in state.get("files") or []]
    return min((e for e in expiries if e is not None), default=None)
