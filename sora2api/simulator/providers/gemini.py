"""Gemini Omni through the Interactions API: /v1/interactions and /v1beta/interactions.

Checked with google-genai 3.6.1 (tests/test_sim_gemini.py). The SDK wins where the written notes
differ: it talks to /v1 (the notes said /v1beta; both are served); the video arrives in a
`model_output` step's content, not in `output_video` (the SDK derives that); failures are
`errors: [{code, message}]` with a string code; cancel is POST .../{id}/cancel (`:cancel` is
accepted too); get adds ?stream=false; a wrong key is 400 API_KEY_INVALID, not 401;
files.download() wants a lower-case alphanumeric file id after `files/`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from aiohttp import web

from ..common import incoming
from ..faults import json_response
from ..media import DEFAULT_MP4_BYTES, Mp4
from ..records import MediaSpec
from ..render import iso
from ..routes_media import stream_mp4
from .state import ProviderAccount, ProviderState, ProviderTask, UpstreamError, providers_of

P = "gemini"
VERSIONS = ("v1", "v1beta")
ASPECTS = frozenset({"16:9", "9:16"})
RESOLUTIONS = frozenset({"360p", "720p", "1080p", "4k"})
_STATUS = {"queued": "in_progress", "running": "in_progress", "done": "completed"}
# assumption: the codes Omni puts in errors[] for safety blocks are unrecorded; these follow the
# finishReason words of generateContent.
INPUT_BLOCK_CODE = "PROHIBITED_CONTENT"
OUTPUT_BLOCK_CODE = "SAFETY"
MSG_OUTPUT_BLOCK = "The generated video was blocked by safety filters."
MSG_INPUT_BLOCK = "The input was blocked by safety filters."
_RPC = "type.googleapis.com/google.rpc."


def envelope(code: int, status: str, message: str, details: list[dict[str, Any]]) -> dict[str, Any]:
    """Google's error envelope."""
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _info(reason: str) -> dict[str, Any]:
    return {
        "@type": _RPC + "ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def fault(name: str, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """A named Google error as (status, body, headers) for a custom fault."""
    message = params.get("message")
    if name == "API_KEY_INVALID":
        msg = message or "API key not valid. Please pass a valid API key."
        return 400, envelope(400, "INVALID_ARGUMENT", msg, [_info("API_KEY_INVALID")]), {}
    if name == "PERMISSION_DENIED":
        msg = message or "Permission denied: Consumer 'api_key:***' has been suspended."
        return 403, envelope(403, "PERMISSION_DENIED", msg, [_info("CONSUMER_SUSPENDED")]), {}
    if name == "RESOURCE_EXHAUSTED":
        daily = bool(params.get("daily"))
        quota = (
            "GenerateRequestsPerDayPerProjectPerModel"
            if daily
            else "GenerateRequestsPerMinutePerProjectPerModel"
        )
        delay = str(params.get("retry_delay", "23s"))
        details: list[dict[str, Any]] = [
            {
                "@type": _RPC + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                        "quotaId": quota,
                        "quotaDimensions": {"model": "gemini-omni-1.1-flash", "location": "global"},
                        "quotaValue": str(params.get("quota_value", 10)),
                    }
                ],
            },
            {"@type": _RPC + "RetryInfo", "retryDelay": delay},
        ]
        msg = (
            message
            or "You exceeded your current quota, please check your plan and billing details."
        )
        return 429, envelope(429, "RESOURCE_EXHAUSTED", msg, details), {}
    table = {
        "INVALID_ARGUMENT": (400, "Request contains an invalid argument."),
        "NOT_FOUND": (404, "Requested entity was not found."),
        "INTERNAL": (500, "An internal error has occurred."),
        "UNAVAILABLE": (503, "The model is overloaded. Please try again later."),
    }
    status, default = table[name]
    return status, envelope(status, name, message or default, []), {}


FAULTS = (
    "API_KEY_INVALID",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "INTERNAL",
    "UNAVAILABLE",
)


def _fail(name: str, message: str | None = None) -> UpstreamError:
    status, body, _ = fault(name, {"message": message} if message else {})
    return UpstreamError(status, body)


def api_key(request: web.Request) -> str | None:
    """The key from `x-goog-api-key`, else `?key=`."""
    return request.headers.get("x-goog-api-key") or request.query.get("key")


def _auth(request: web.Request) -> ProviderAccount:
    account = providers_of(request).account(P, api_key(request))
    if account is None:
        raise _fail("API_KEY_INVALID")
    if account.suspended:
        raise _fail("PERMISSION_DENIED")
    return account


def file_id(task: ProviderTask) -> str:
    """The Files-API id of a task's video (lower-case alnum: google-genai's download insists)."""
    return hashlib.sha256(task.id.encode()).hexdigest()[:20]


def _video(ps: ProviderState, task: ProviderTask, origin: str) -> dict[str, Any]:
    if task.params.get("delivery", ps.settings.gemini_delivery) == "uri":
        uri = f"{origin}/{task.api_version}/files/{file_id(task)}:download?alt=media"
        return {"type": "video", "uri": uri, "mime_type": "video/mp4"}
    spec = ps.sim.media.get(task.id) or MediaSpec(kind="mp4")
    mp4 = Mp4(
        size=spec.size or DEFAULT_MP4_BYTES,
        seed=f"{task.id}/video",
        duration_ms=spec.duration_ms,
        width=spec.width,
        height=spec.height,
    )
    return {
        "type": "video",
        "data": base64.b64encode(mp4.to_bytes()).decode(),
        "mime_type": "video/mp4",
    }


def render(ps: ProviderState, task: ProviderTask, origin: str) -> dict[str, Any]:
    """The interaction resource."""
    phase = ps.phase(task)
    errors: list[dict[str, str]] | None = None
    steps: list[dict[str, Any]] = []
    if task.input_blocked is not None:
        status = "failed"
        errors = [
            {"code": INPUT_BLOCK_CODE, "message": f"{MSG_INPUT_BLOCK} ({task.input_blocked})"}
        ]
    elif phase.status == "cancelled":
        status = "cancelled"
    elif phase.status == "failed":
        status = "failed"
        errors = [
            {
                "code": "INTERNAL",
                "message": task.core.scenario.message or "Video generation failed.",
            }
        ]
    else:
        status = _STATUS[phase.status]
        if status == "completed" and ps.outcome(task) == "violation":
            status = ps.settings.gemini_block_status
            errors = [
                {
                    "code": OUTPUT_BLOCK_CODE,
                    "message": task.core.scenario.message or MSG_OUTPUT_BLOCK,
                }
            ]
        elif status == "completed":
            steps.append({"type": "model_output", "content": [_video(ps, task, origin)]})
    finished = status in ("completed", "failed", "incomplete") and task.input_blocked is None
    updated = ps.finished_wall(task) if finished else ps.sim.wall()
    body: dict[str, Any] = {
        "id": task.id,
        "object": "interaction",
        "model": task.model,
        "status": status,
        "created": iso(task.created_wall),
        "updated": iso(updated),
        "response_format": task.params["response_format"],
        "steps": steps,
    }
    if status == "completed":
        seconds = float(task.params["response_format"].get("duration", "10"))
        body["usage"] = {
            "total_output_tokens": int(seconds * 1000),
            "total_tokens": int(seconds * 1000),
        }
    if errors:
        body["errors"] = errors
    return body


def _input(ps: ProviderState, raw: Any) -> tuple[str, int, str | None]:
    """(prompt text, image count, blocked word) from a string, parts, or user_input steps."""
    if isinstance(raw, str):
        return raw, 0, ps.blocked(raw)
    if not isinstance(raw, list) or not raw:
        raise _fail("INVALID_ARGUMENT", "input must be a string or a non-empty list of content.")
    parts: list[Any] = []
    for item in raw:
        # The SDK sends a list of parts as one step: [{type: user_input, content: [...]}].
        if isinstance(item, dict) and item.get("type") == "user_input":
            content = item.get("content")
            parts.extend(content if isinstance(content, list) else [])
        else:
            parts.append(item)
    text, images, blocked = "", 0, None
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            text += part["text"]
        elif kind == "image":
            if not isinstance(part.get("data"), str) and not isinstance(part.get("uri"), str):
                raise _fail("INVALID_ARGUMENT", "image content needs data (base64) or uri.")
            if isinstance(part.get("data"), str):
                try:
                    decoded = base64.b64decode(part["data"], validate=True)
                except ValueError as exc:
                    raise _fail("INVALID_ARGUMENT", "image data is not valid base64.") from exc
                blocked = blocked or ps.blocked(decoded.decode("latin-1"))
            images += 1
        else:
            raise _fail("INVALID_ARGUMENT", f"unsupported content type {kind!r}.")
    return text, images, blocked or ps.blocked(text)


def _format(raw: Any) -> dict[str, Any]:
    fmt = dict(raw) if isinstance(raw, dict) else {}
    if fmt.get("type", "video") != "video":
        raise _fail("INVALID_ARGUMENT", "response_format.type must be video for this model.")
    fmt["type"] = "video"
    if fmt.setdefault("aspect_ratio", "16:9") not in ASPECTS:
        raise _fail("INVALID_ARGUMENT", f"aspect_ratio must be one of {sorted(ASPECTS)}.")
    if fmt.setdefault("resolution", "720p") not in RESOLUTIONS:
        raise _fail("INVALID_ARGUMENT", f"resolution must be one of {sorted(RESOLUTIONS)}.")
    try:
        seconds = float(fmt.setdefault("duration", "10"))
    except (TypeError, ValueError) as exc:
        raise _fail("INVALID_ARGUMENT", "duration must be a number of seconds.") from exc
    if not 3 <= seconds <= 10:
        raise _fail("INVALID_ARGUMENT", "duration must be between 3 and 10 seconds.")
    fmt["duration"] = str(fmt["duration"])
    if fmt.get("delivery", "inline") not in ("inline", "uri"):
        raise _fail("INVALID_ARGUMENT", "delivery must be inline or uri.")
    return fmt


async def create(request: web.Request) -> web.Response:
    """POST /{v}/interactions {model, input, background, response_format}."""
    account = _auth(request)
    ps = providers_of(request)
    body = incoming(request).json
    if not isinstance(body, dict):
        raise _fail("INVALID_ARGUMENT", "The request body must be a JSON object.")
    model = body.get("model")
    if model not in account.models:
        raise _fail(
            "NOT_FOUND",
            f"models/{model} is not found for API version {request.match_info['version']}.",
        )
    if body.get("background") is not True:
        # Omni renders for tens of seconds; a foreground call would outlive any proxy timeout.
        raise _fail("INVALID_ARGUMENT", "Video generation requires background: true.")
    text, images, blocked = _input(ps, body.get("input"))
    fmt = _format(body.get("response_format"))
    params = {
        "response_format": fmt,
        "images": images,
        "delivery": fmt.get("delivery", ps.settings.gemini_delivery),
    }
    task = ps.new_task(P, account, str(model), text, **params)
    task.api_version = request.match_info["version"]
    task.input_blocked = blocked
    return json_response(render(ps, task, str(request.url.origin())))


def _task(request: web.Request, account: ProviderAccount) -> ProviderTask:
    iid = request.match_info["iid"]
    task = providers_of(request).owned(P, iid, account)
    if task is None:
        raise _fail("NOT_FOUND", f"Interaction {iid} was not found.")
    return task


async def get(request: web.Request) -> web.Response:
    """GET /{v}/interactions/{id}[?stream=false]."""
    account = _auth(request)
    if request.query.get("stream", "false") != "false":
        raise _fail("INVALID_ARGUMENT", "Streaming a background interaction is not simulated.")
    task = _task(request, account)
    return json_response(render(providers_of(request), task, str(request.url.origin())))


async def cancel(request: web.Request) -> web.Response:
    """POST /{v}/interactions/{id}/cancel (or :cancel): only a running interaction can be."""
    account = _auth(request)
    ps = providers_of(request)
    task = _task(request, account)
    if render(ps, task, "")["status"] != "in_progress":
        raise _fail("INVALID_ARGUMENT", "Only an in-progress interaction can be cancelled.")
    task.cancelled_at = ps.sim.now()
    return json_response(render(ps, task, str(request.url.origin())))


async def delete(request: web.Request) -> web.Response:
    """DELETE /{v}/interactions/{id}."""
    account = _auth(request)
    task = _task(request, account)
    task.deleted = True
    return json_response({})


async def download(request: web.Request) -> web.StreamResponse:
    """GET /{v}/files/{file_id}:download?alt=media: the video, for its owner's key only."""
    account = _auth(request)
    ps = providers_of(request)
    wanted = request.match_info["file_id"]
    for task in ps.tasks.values():
        if (
            task.provider == P
            and file_id(task) == wanted
            and task.account == account.name
            and not task.deleted
        ):
            if render(ps, task, "")["status"] == "completed":
                spec = ps.sim.media.get(task.id) or MediaSpec(kind="mp4")
                return await stream_mp4(request, spec, f"{task.id}/video")
    raise _fail("NOT_FOUND", f"File files/{wanted} was not found.")


async def models(request: web.Request) -> web.Response:
    """GET /{v}/models: the models this key may use."""
    account = _auth(request)
    data = [
        {
            "name": f"models/{m}",
            "displayName": m,
            "supportedGenerationMethods": ["createInteraction"],
        }
        for m in account.models
    ]
    return json_response({"models": data})


def routes() -> list[web.RouteDef]:
    """Interactions and file downloads under /v1 and /v1beta (GET /v1/models is shared)."""
    i = "/{version:v1|v1beta}/interactions"
    return [
        web.post(i, create),
        web.post(i + "/{iid}:cancel", cancel),
        web.post(i + "/{iid}/cancel", cancel),
        web.get(i + "/{iid}", get),
        web.delete(i + "/{iid}", delete),
        web.get("/{version:v1|v1beta}/files/{file_id}:download", download),
        web.get("/v1beta/models", models),
    ]
