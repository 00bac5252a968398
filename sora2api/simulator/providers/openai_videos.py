"""An OpenAI-Videos-shaped upstream, as gateways (new-api, LiteLLM proxy) expose /v1/videos.

Checked with openai-python 3.57 (tests/test_sim_openai_videos.py). Where the SDK and the written
notes differ, this follows the SDK: videos.create always sends multipart/form-data (even with no
file), so JSON bodies come only from raw HTTP clients and gateways; `seconds` is sent as a string;
download_content sends `Accept: application/binary`; list is a cursor page over `after`/`limit`.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..common import bearer, incoming
from ..faults import json_response
from ..media import pattern_png, sniff_image
from ..records import MediaSpec
from ..routes_media import stream_mp4
from .state import (
    ProviderAccount,
    ProviderState,
    ProviderTask,
    UpstreamError,
    Variant,
    providers_of,
)

P = "openai"
_SIZE_RE = re.compile(r"^\d{2,5}x\d{2,5}$")
_STATUS = {"queued": "queued", "running": "in_progress", "done": "completed", "failed": "failed"}
MSG_VIOLATION = "Your request was blocked by our moderation system."
MSG_FAILED = "Video generation failed."


def error_body(
    variant: Variant, status: int, message: str, code: str | None, type_: str, param: str | None
) -> dict[str, Any]:
    """OpenAI's envelope, or one of new-api's variants of it."""
    if variant.error_style == "newapi_task":
        # new-api's task relay answers {code, message, data} with no "error" object.
        return {"code": code or "fail", "message": message, "data": None}
    if variant.error_style == "newapi":
        return {"error": {"message": message, "type": "new_api_error", "param": "", "code": code}}
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


ERRORS: dict[str, tuple[int, str, str, str]] = {
    # name: (status, code, type, default message)
    "invalid_api_key": (
        401,
        "invalid_api_key",
        "invalid_request_error",
        "Incorrect API key provided.",
    ),
    "rate_limit": (429, "rate_limit_exceeded", "requests", "Rate limit reached for requests."),
    "insufficient_quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "moderation_blocked": (400, "moderation_blocked", "invalid_request_error", MSG_VIOLATION),
    "invalid_request": (400, "invalid_value", "invalid_request_error", "Invalid request."),
    "server_error": (500, "server_error", "server_error", "The server had an error."),
    "overloaded": (503, "server_is_overloaded", "server_error", "The engine is overloaded."),
}


def fault(variant: Variant, name: str, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """A named upstream error as (status, body, headers) for a custom fault."""
    status, code, type_, message = ERRORS[name]
    body = error_body(variant, status, str(params.get("message") or message), code, type_, None)
    headers = {}
    if params.get("retry_after") is not None:
        headers["Retry-After"] = str(params["retry_after"])
    return status, body, headers


def _fail(
    request: web.Request,
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
) -> UpstreamError:
    ps = providers_of(request)
    variant = ps.variant_of(ps.account(P, bearer(request)))
    type_ = "invalid_request_error" if status < 500 else "server_error"
    return UpstreamError(status, error_body(variant, status, message, code, type_, param))


def _auth(request: web.Request) -> ProviderAccount:
    key = bearer(request)
    account = providers_of(request).account(P, key)
    if account is None or account.suspended:
        shown = f"{key[:3]}***{key[-4:]}" if key and len(key) > 8 else "<none>"
        message = (
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        raise _fail(request, 401, message, "invalid_api_key")
    return account


def _ok(
    request: web.Request, account: ProviderAccount, body: Any, status: int = 200
) -> web.Response:
    if providers_of(request).variant_of(account).wrap:
        body = {"code": "success", "message": "", "data": body}
    return json_response(body, status=status)


def render(ps: ProviderState, task: ProviderTask, variant: Variant) -> dict[str, Any]:
    """A Video object, bent by the gateway variant."""
    phase = ps.phase(task)
    outcome = ps.outcome(task)
    error = None
    if phase.status == "cancelled":
        status, progress = "failed", phase.progress
        error = {"code": "cancelled", "message": "The video was cancelled."}
    else:
        status, progress = _STATUS[phase.status], phase.progress
        if phase.status == "done" and outcome == "violation":
            status = "failed"
            message = task.core.scenario.message or MSG_VIOLATION
            error = {"code": "moderation_blocked", "message": message}
        elif status == "failed":
            error = {
                "code": "video_generation_failed",
                "message": task.core.scenario.message or MSG_FAILED,
            }
    done = status in ("completed", "failed")
    body: dict[str, Any] = {
        variant.id_field: task.id,
        "object": "video",
        "model": task.model,
        "status": status,
        "progress": int(round((progress or 0.0) * 100)) if status != "completed" else 100,
        "created_at": int(task.created_wall),
        "completed_at": int(ps.finished_wall(task)) if done and status == "completed" else None,
        "expires_at": int(ps.finished_wall(task) + 86400) if status == "completed" else None,
        "error": error,
        "prompt": task.core.prompt,
        "remixed_from_video_id": task.remixed_from,
        "seconds": task.params["seconds"],
        "size": task.params["size"],
    }
    if not variant.progress:
        del body["progress"]
    if status == "in_progress" and variant.processing:
        body["status"] = "processing"
    elif status == "queued" and variant.unknown_queued:
        body["status"] = "unknown"
    if variant.status_case == "upper":
        body["status"] = body["status"].upper()
    return body


def _fields(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Create fields from multipart (what the SDK sends) or JSON (raw clients), and the image kind."""
    body = incoming(request)
    if body.multipart:
        fields: dict[str, Any] = {}
        for name, part in body.parts.items():
            if name != "input_reference":
                fields[name] = part.text()
        ref = body.part("input_reference")
        if ref is None:
            return fields, None
        kind = sniff_image(ref.data)
        if kind is None:
            raise _fail(
                request,
                400,
                "input_reference must be a PNG, JPEG or WebP image.",
                "invalid_value",
                "input_reference",
            )
        fields["input_reference"] = {"filename": ref.filename, "size": ref.size}
        return fields, kind
    if not isinstance(body.json, dict):
        raise _fail(
            request, 400, "The request body must be JSON or multipart/form-data.", "invalid_value"
        )
    fields = dict(body.json)
    ref = fields.get("input_reference")
    if ref is None:
        return fields, None
    url = ref.get("image_url") if isinstance(ref, dict) else None
    if not isinstance(url, str) or not url:
        raise _fail(
            request,
            400,
            'input_reference must be {"image_url": <url>} in a JSON body.',
            "invalid_value",
            "input_reference",
        )
    return fields, "url"


def _validate(
    request: web.Request, account: ProviderAccount, fields: dict[str, Any]
) -> dict[str, Any]:
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _fail(
            request,
            400,
            "Missing required parameter: 'prompt'.",
            "missing_required_parameter",
            "prompt",
        )
    model = fields.get("model") or account.models[0]
    if model not in account.models:
        raise _fail(
            request,
            400,
            f"Invalid model {model!r}; this key serves: {', '.join(account.models)}.",
            "invalid_value",
            "model",
        )
    seconds = str(fields.get("seconds") or "4")
    if not seconds.isdigit() or not 1 <= int(seconds) <= 20:
        raise _fail(
            request, 400, f"Invalid value for seconds: {seconds!r}.", "invalid_value", "seconds"
        )
    size = str(fields.get("size") or "720x1280")
    if not _SIZE_RE.match(size):
        raise _fail(
            request,
            400,
            f"Invalid value for size: {size!r}; expected WIDTHxHEIGHT.",
            "invalid_value",
            "size",
        )
    if providers_of(request).blocked(prompt):
        raise _fail(request, 400, MSG_VIOLATION, "moderation_blocked", "prompt")
    return {"prompt": prompt, "model": model, "seconds": seconds, "size": size}


async def create(request: web.Request) -> web.Response:
    """POST /v1/videos (multipart from the SDK, JSON from raw clients)."""
    account = _auth(request)
    fields, image = _fields(request)
    clean = _validate(request, account, fields)
    ps = providers_of(request)
    task = ps.new_task(
        P,
        account,
        clean["model"],
        clean["prompt"],
        seconds=clean["seconds"],
        size=clean["size"],
        image=image,
    )
    return _ok(request, account, render(ps, task, ps.variant_of(account)))


def _task(request: web.Request, account: ProviderAccount) -> ProviderTask:
    video_id = request.match_info["video_id"]
    task = providers_of(request).owned(P, video_id, account)
    if task is None:
        raise _fail(
            request, 404, f"Video with id '{video_id}' not found.", "video_not_found", "video_id"
        )
    return task


async def retrieve(request: web.Request) -> web.Response:
    """GET /v1/videos/{video_id}."""
    account = _auth(request)
    ps = providers_of(request)
    task = _task(request, account)
    response = _ok(request, account, render(ps, task, ps.variant_of(account)))
    if ps.phase(task).status in ("queued", "running"):
        response.headers["openai-poll-after-ms"] = "1000"  # SDK's poll() honours it
    return response


async def listing(request: web.Request) -> web.Response:
    """GET /v1/videos?after&limit&order: this key's videos, newest first by default."""
    account = _auth(request)
    ps = providers_of(request)
    tasks = [
        t
        for t in ps.tasks.values()
        if t.provider == P and t.account == account.name and not t.deleted
    ]
    tasks.sort(key=lambda t: t.core.created, reverse=request.query.get("order", "desc") != "asc")
    after = request.query.get("after")
    if after:
        ids = [t.id for t in tasks]
        tasks = tasks[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
    except ValueError as exc:
        raise _fail(request, 400, "limit must be an integer.", "invalid_value", "limit") from exc
    page = tasks[:limit]
    variant = ps.variant_of(account)
    data = [render(ps, t, variant) for t in page]
    body = {
        "object": "list",
        "data": data,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": len(tasks) > limit,
    }
    return _ok(request, account, body)


async def content(request: web.Request) -> web.StreamResponse:
    """GET /v1/videos/{video_id}/content?variant=video|thumbnail|spritesheet (the key is required)."""
    account = _auth(request)
    ps = providers_of(request)
    task = _task(request, account)
    if ps.phase(task).status != "done" or ps.outcome(task) == "violation":
        raise _fail(
            request, 400, "Video is not ready; its status must be completed.", "video_not_ready"
        )
    variant = request.query.get("variant", "video")
    if variant in ("thumbnail", "spritesheet"):
        spec = ps.sim.media.get(task.id) or MediaSpec(kind="mp4")
        body = pattern_png(task.id, spec.width, spec.height)  # the video's colours and shape
        return web.Response(body=body, content_type="image/png")
    if variant != "video":
        raise _fail(request, 400, f"Invalid variant {variant!r}.", "invalid_value", "variant")
    spec = ps.sim.media.get(task.id) or MediaSpec(kind="mp4")
    return await stream_mp4(request, spec, f"{task.id}/video")


async def delete(request: web.Request) -> web.Response:
    """DELETE /v1/videos/{video_id}: cancels a running job, forgets a finished one."""
    account = _auth(request)
    ps = providers_of(request)
    task = _task(request, account)
    if ps.phase(task).status in ("queued", "running"):
        task.cancelled_at = ps.sim.now()
    task.deleted = True
    return _ok(request, account, {"id": task.id, "object": "video.deleted", "deleted": True})


async def remix(request: web.Request) -> web.Response:
    """POST /v1/videos/{video_id}/remix {prompt}: a new video from a completed one."""
    account = _auth(request)
    ps = providers_of(request)
    source = _task(request, account)
    body = incoming(request).json
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise _fail(
            request,
            400,
            "Missing required parameter: 'prompt'.",
            "missing_required_parameter",
            "prompt",
        )
    if ps.phase(source).status != "done" or ps.outcome(source) == "violation":
        raise _fail(
            request, 400, "Only completed videos can be remixed.", "invalid_value", "video_id"
        )
    if ps.blocked(prompt):
        raise _fail(request, 400, MSG_VIOLATION, "moderation_blocked", "prompt")
    params = {k: source.params[k] for k in ("seconds", "size")}
    task = ps.new_task(P, account, source.model, prompt, **params, image=None)
    task.remixed_from = source.id
    return _ok(request, account, render(ps, task, ps.variant_of(account)))


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: the video models this key may use."""
    account = _auth(request)
    data = [
        {"id": m, "object": "model", "created": 1767225600, "owned_by": "sim-gateway"}
        for m in account.models
    ]
    return _ok(request, account, {"object": "list", "data": data})


def routes() -> list[web.RouteDef]:
    """The gateway's routes (GET /v1/models is shared with Gemini, see providers.routes)."""
    return [
        web.post("/v1/videos", create),
        web.get("/v1/videos", listing),
        web.get("/v1/videos/{video_id}", retrieve),
        web.delete("/v1/videos/{video_id}", delete),
        web.get("/v1/videos/{video_id}/content", content),
        web.post("/v1/videos/{video_id}/remix", remix),
    ]
