"""The OpenAI Videos API on the job engine: /v1/videos, its content, remix and characters.

Every video job is served here, whichever API created it: a chat completion's job id works with
GET /v1/videos/{id} and /content, so a client whose stream broke can pick up its result.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .. import keys
from ..errors import ApiError, BadRequestError, ConflictError, NotFoundError, json_response
from ..flows.openai_request import (
    ORIENTATION_SIZE,
    parse_character_create,
    parse_video_create,
    remix_request,
    row_spec,
    share_id,
    unpublish,
)
from ..flows.provider_request import parse_provider_video, provider_model, provider_remix
from ..jobs import JobEngine
from ..media import CONTENT_TYPES, MediaCache
from ..reqlog import READY_JOB
from ..store import JobRow
from ..viewcache import FINAL
from ..webhooks import parse_webhook_url
from .common import input_guard, query_int, read_object, submit

# How often SDK pollers should come back (the SDK reads this header when no interval is given);
# the upstream itself is polled every few seconds.
_POLL_AFTER_MS = "2000"
_VARIANTS = ("video", "thumbnail", "spritesheet")


class GoneError(ApiError):
    status = 410
    type = "invalid_request_error"
    code = "media_expired"


# -- rendering -------------------------------------------------------------------------------------


def _state(row: JobRow) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads(row.state or "{}")
    return state


def live_progress(engine: JobEngine, row: JobRow) -> int:
    """The live progress when this process runs the job (the row is written every few seconds)."""
    if row.status == "completed":
        return 100
    progress = float(row.progress or 0)
    run = engine.run_of(row.id)
    if run is not None:
        for event in reversed(run.events):
            if event.progress is not None:
                progress = max(progress, event.progress)
                break
    # 100 only once the file is ready: caching after generation still takes a moment.
    return min(int(progress), 99)


def public_status(engine: JobEngine, row: JobRow) -> tuple[str, dict[str, str] | None]:
    status = row.status
    if status == "cancelled":
        return "failed", {
            "code": "cancelled",
            "message": row.error_message or "The job was cancelled",
        }
    if status == "failed":
        return "failed", {
            "code": row.error_code or "failed",
            "message": row.error_message or "The generation failed",
        }
    # "queued" is the job engine's own: waiting for a free token.
    return status, None


def _expires_at(media: MediaCache, row: JobRow) -> int | None:
    files = _state(row).get("files") or []
    if row.status != "completed" or not files:
        return None
    expires = media.expires_at(str(files[0]))
    return int(expires) if expires is not None else None


def _size(spec: dict[str, Any]) -> str:
    if spec.get("provider") and spec.get("width") and spec.get("height"):
        return f"{spec['width']}x{spec['height']}"  # a provider model's own size
    return ORIENTATION_SIZE.get(str(spec.get("orientation")), "720x1280")


def video_object(engine: JobEngine, row: JobRow) -> dict[str, Any]:
    """The OpenAI video object, plus `task_id` (gateways such as new-api read it)."""
    spec = row_spec(row)
    status, error = public_status(engine, row)
    completed = row.completed_at
    return {
        "id": row.id,
        "task_id": row.id,
        "object": "video",
        "model": row.model,
        "status": status,
        "progress": live_progress(engine, row),
        "created_at": int(row.created_at),
        "completed_at": int(completed) if completed and status in ("completed", "failed") else None,
        "expires_at": _expires_at(engine.media, row),
        "prompt": row.prompt or spec.get("prompt") or "",
        "size": _size(spec),
        "seconds": str(spec.get("seconds") or ""),
        "remixed_from_video_id": row.remixed_from,
        "error": error,
    }


def _video_response(engine: JobEngine, row: JobRow, status: int = 200) -> web.Response:
    body = video_object(engine, row)
    headers = (
        {"openai-poll-after-ms": _POLL_AFTER_MS}
        if body["status"] in ("queued", "in_progress")
        else None
    )
    return json_response(body, status=status, headers=headers)


def character_object(row: JobRow) -> dict[str, Any]:
    """The character of a character job: OpenAI's {id, created_at, name} plus Sora's ids."""
    result: dict[str, Any] = orjson.loads(row.result) if row.result else {}
    opts = row_spec(row).get("character") or {}
    state = _state(row)
    status = row.status
    error = None
    if status in ("failed", "cancelled"):
        error = {"code": row.error_code or status, "message": row.error_message or ""}
        status = "failed"
    display_name = result.get("display_name") or opts.get("display_name")
    return {
        "id": row.id,
        "object": "character",
        "created_at": int(row.created_at),
        "name": display_name,
        "status": status,
        "username": result.get("username") or state.get("username"),
        "display_name": display_name,
        "cameo_id": result.get("cameo_id") or state.get("cameo_id"),
        "character_id": result.get("character_id") or state.get("character_id"),
        "error": error,
    }


# -- lookups ---------------------------------------------------------------------------------------

_ELSEWHERE = {"image": "GET /v1/images/{id}", "character": "GET /v1/videos/characters/{id}"}


def owned(request: web.Request, row: JobRow) -> JobRow:
    """The row when the request may see it: a created API key sees only its own jobs, and
    another's answers exactly like a job that does not exist."""
    key = request.get(keys.REQ_KEY)
    if key is not None and row.key_id != key.id:
        raise NotFoundError(f"No job with id {row.id!r}", param="id")
    return row


async def typed_job(request: web.Request, kind: str) -> JobRow:
    engine = request.app[keys.JOBS]
    job_id = request.match_info["id"]
    row = owned(request, await engine.get(job_id))
    if row.kind != kind:
        where = _ELSEWHERE.get(row.kind, "GET /v1/videos/{id}").replace("{id}", job_id)
        raise NotFoundError(
            f"{job_id} is a {row.kind} job, not a {kind}; read it with {where}", param="id"
        )
    return row


# -- handlers --------------------------------------------------------------------------------------


async def create_video(request: web.Request) -> web.Response:
    """POST /v1/videos (JSON or multipart): submit a job and answer with its video object at once."""
    engine = request.app[keys.JOBS]
    fields = await read_object(request, form=True)
    webhook_url = parse_webhook_url(fields)
    spec = provider_model(engine.pool.rows(), fields.get("model"))
    if spec is not None:
        req = await parse_provider_video(fields, input_guard(request), spec)
    else:
        req = await parse_video_create(fields, input_guard(request), engine)
    run = await submit(request, req, api="videos", webhook_url=webhook_url)
    return _video_response(engine, await engine.get(run.job_id))


# A public status and the job statuses it stands for (a cancelled job reads as failed).
_LIST_STATUSES: dict[str, tuple[str, ...]] = {
    "queued": ("queued",),
    "in_progress": ("in_progress",),
    "completed": ("completed",),
    "failed": ("failed", "cancelled"),
}


async def list_videos(request: web.Request) -> web.Response:
    """GET /v1/videos?after=&limit=&order=&status=: every video job, chat-created ones included."""
    engine = request.app[keys.JOBS]
    limit = query_int(request, "limit", 20, 1, 100)
    status = request.query.get("status") or None
    if status is not None and status not in _LIST_STATUSES:
        raise BadRequestError(
            f"Query parameter 'status' must be one of {', '.join(_LIST_STATUSES)}, got {status!r}",
            param="status",
        )
    order = request.query.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequestError("Query parameter 'order' must be asc or desc", param="order")
    after = request.query.get("after") or None
    if after is not None:
        # The page query orders by the anchor's time whatever its kind: an image id would
        # silently page the videos from an unrelated point.
        try:
            anchor_kind = owned(request, await engine.get(after)).kind
        except NotFoundError:
            anchor_kind = None
        if anchor_kind != "video":
            raise BadRequestError(f"Unknown cursor 'after={after}': no such video", param="after")
    try:
        rows, more = await engine.page(
            "video",
            after=after,
            limit=limit,
            order=order,
            statuses=_LIST_STATUSES[status] if status else None,
            key_id=key.id if (key := request.get(keys.REQ_KEY)) else None,
        )
    except NotFoundError:
        raise BadRequestError(
            f"Unknown cursor 'after={after}': no such video", param="after"
        ) from None
    data = [video_object(engine, r) for r in rows]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


async def get_video(request: web.Request) -> web.Response:
    """GET /v1/videos/{id}: what SDKs and gateways poll. A finished video's answer is kept ready
    (engine.views), so a poll after the end reads neither the database nor the disk."""
    engine = request.app[keys.JOBS]
    job_id = request.match_info["id"]
    settings = engine.settings.current
    # The kept answers are not per key: a created key's poll reads the row (and its owner).
    mine = keys.REQ_KEY not in request
    body = engine.views.get(job_id, "video", settings) if mine else None
    if body is not None:
        request[READY_JOB] = job_id  # logged as a counted row (see reqlog.READY_JOB)
        return web.Response(body=body, content_type="application/json")
    epoch = engine.views.epoch
    row = await typed_job(request, "video")
    if row.status not in FINAL:
        return _video_response(engine, row)
    video = video_object(engine, row)
    body = orjson.dumps(video)
    # A completed video's answer holds until its cached file expires (expires_at then changes).
    engine.views.put(job_id, "video", body, settings, video["expires_at"], epoch)
    return web.Response(body=body, content_type="application/json")


async def delete_video(request: web.Request) -> web.Response:
    """DELETE /v1/videos/{id}: stop it if it runs (freeing its token), remove its files and row."""
    engine = request.app[keys.JOBS]
    row = await typed_job(request, "video")
    last = await engine.delete(row.id)
    await unpublish(engine, last)
    return json_response({"id": row.id, "object": "video.deleted", "deleted": True})


async def video_content(request: web.Request) -> web.StreamResponse:
    """GET /v1/videos/{id}/content?variant=video|thumbnail: the cached file, with Range support."""
    engine = request.app[keys.JOBS]
    variant = request.query.get("variant") or "video"
    if variant not in _VARIANTS:
        raise BadRequestError(
            f"Unknown variant {variant!r}; use one of: {', '.join(_VARIANTS)}", param="variant"
        )
    row = await typed_job(request, "video")
    job_id = row.id
    if row.status != "completed":
        status, error = public_status(engine, row)
        if error is not None:
            raise ConflictError(
                f"Video {job_id} failed ({error['code']}: {error['message']}); it has no content",
                code="video_failed",
            )
        raise ConflictError(
            f"Video {job_id} is not finished yet (status {status}, {live_progress(engine, row)}%); "
            f"poll GET /v1/videos/{job_id} until its status is completed",
            code="video_not_ready",
        )
    state = _state(row)
    if variant == "video":
        files = state.get("files") or []
        name = str(files[0]) if files else None
    else:
        name = state.get(variant)
    if not name and variant == "thumbnail" and state.get("thumbnail_error"):
        raise NotFoundError(
            f"The thumbnail could not be cached: {state['thumbnail_error']}", param="variant"
        )
    if not name:
        raise NotFoundError(
            f"The Sora backend gave no {variant} for video {job_id}", param="variant"
        )
    path = engine.media.resolve(name)
    if path is None:
        raise GoneError(
            f"The {variant} of video {job_id} has expired from the media cache "
            "([storage] media_ttl); generate it again"
        )
    ext = name.rsplit(".", 1)[1]
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES[ext],
            "Content-Disposition": f'inline; filename="{job_id}.{ext}"',
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def remix_video(request: web.Request) -> web.Response:
    """POST /v1/videos/{id}/remix {prompt}: a new job remixing a finished video."""
    engine = request.app[keys.JOBS]
    source = await typed_job(request, "video")
    if source.status != "completed":
        raise ConflictError(
            f"Video {source.id} is {source.status}; only a completed video can be remixed",
            code="video_not_ready",
        )
    fields = await read_object(request, form=True)
    options = {"remixed_from": source.id, "webhook_url": parse_webhook_url(fields)}
    if row_spec(source).get("provider"):
        req = provider_remix(engine.pool.rows(), source, fields)
        run = await submit(request, req, api="videos", **options)
        return _video_response(engine, await engine.get(run.job_id))
    req = remix_request(source, fields)
    req.remix_target_id = await share_id(engine, source)
    run = await submit(request, req, api="videos", **options)
    return _video_response(engine, await engine.get(run.job_id))


async def unsupported(request: web.Request) -> web.Response:
    """POST /v1/videos/edits and /extensions: named, so the client learns why instead of a 405."""
    raise BadRequestError(
        f"{request.path} is not available on the Sora web backend; "
        "use POST /v1/videos/{id}/remix to change a finished video",
        code="unsupported_endpoint",
    )


async def create_character(request: web.Request) -> web.Response:
    """POST /v1/videos/characters (the SDK's create_character: multipart name + video)."""
    engine = request.app[keys.JOBS]
    req = await parse_character_create(await read_object(request, form=True), input_guard(request))
    run = await submit(request, req, api="videos")
    return json_response(character_object(await engine.get(run.job_id)))


async def get_character(request: web.Request) -> web.Response:
    return json_response(character_object(await typed_job(request, "character")))
