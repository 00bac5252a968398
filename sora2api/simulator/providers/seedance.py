"""Seedance on Volcengine Ark / BytePlus ModelArk: /api/v3/contents/generations/tasks.

Checked with volcengine-python-sdk[ark] 5.0.54 (tests/test_sim_seedance.py). The SDK wins where
the written notes differ: create sends every unset parameter as an explicit JSON null (so null
means "not given" here), plus an X-Client-Request-Id header; list filters are `filter.status`,
`filter.task_ids` (repeated), `filter.model`, `filter.service_tier` with page_num/page_size and the
answer is {items, total}; the SDK also knows `frames`, `tools`, `output_format`,
`omni_reference_task_type` and the task fields `framespersecond`, `revised_prompt`, `draft_task_id`.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from ..common import bearer, incoming
from ..faults import json_response
from .state import ProviderAccount, ProviderState, ProviderTask, UpstreamError, providers_of

P = "seedance"
BASE = "/api/v3/contents/generations/tasks"
RATIOS = frozenset({"16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "adaptive"})
RESOLUTIONS = frozenset({"480p", "720p", "1080p"})
ROLES = frozenset({"first_frame", "last_frame", "reference_image"})
STATUSES = frozenset({"queued", "running", "succeeded", "failed", "cancelled", "expired"})
# Ark expires a task that has not run within execution_expires_after (default 48 h).
DEFAULT_EXPIRES_AFTER = 172800

ERRORS: dict[str, tuple[int, str, str]] = {
    # code: (status, type, default message)
    "AuthenticationError": (
        401,
        "Unauthorized",
        "The API key or AK/SK in the request is missing or invalid.",
    ),
    "RateLimitExceeded": (
        429,
        "TooManyRequests",
        "Your account has exceeded the rate limit (RPM) for this model. Please retry later.",
    ),
    "ServerOverloaded": (429, "TooManyRequests", "The service is overloaded. Please retry later."),
    "InvalidParameter": (400, "BadRequest", "A parameter specified in the request is not valid."),
    "InputTextSensitiveContentDetected": (
        400,
        "BadRequest",
        "The request failed because the input text may contain sensitive information.",
    ),
    "InputImageSensitiveContentDetected": (
        400,
        "BadRequest",
        "The request failed because the input image may contain sensitive information.",
    ),
    "OutputVideoSensitiveContentDetected": (
        400,
        "BadRequest",
        "The request failed because the output video may contain sensitive information.",
    ),
    "ModelNotOpen": (404, "NotFound", "Your account has not activated the model service."),
    "InternalServiceError": (500, "InternalServerError", "The service encountered an error."),
}


def error_body(
    code: str, message: str | None = None, param: str = ""
) -> tuple[int, dict[str, Any]]:
    """Ark's envelope {"error": {code, message, param, type}} and its status."""
    status, type_, default = ERRORS[code]
    return status, {
        "error": {"code": code, "message": message or default, "param": param, "type": type_}
    }


def fault(name: str, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """A named Ark error as (status, body, headers) for a custom fault."""
    status, body = error_body(name, params.get("message"))
    headers = {"Retry-After": str(params["retry_after"])} if params.get("retry_after") else {}
    return status, body, headers


def _fail(code: str, message: str | None = None, param: str = "") -> UpstreamError:
    return UpstreamError(*error_body(code, message, param))


def _auth(request: web.Request) -> ProviderAccount:
    account = providers_of(request).account(P, bearer(request))
    if account is None or account.suspended:
        raise _fail("AuthenticationError")
    return account


def _status(ps: ProviderState, task: ProviderTask) -> tuple[str, dict[str, str] | None]:
    phase = ps.phase(task)
    scenario = task.core.scenario
    if phase.status == "cancelled":
        return "cancelled", None
    if phase.status == "queued" or phase.status == "running":
        limit = int(task.params.get("execution_expires_after") or DEFAULT_EXPIRES_AFTER)
        if ps.sim.now() - task.core.created > ps.sim.settings.scaled(limit):
            return "expired", None
        return phase.status, None
    if phase.status == "failed":
        message = scenario.message or ERRORS["InternalServiceError"][2]
        return "failed", {"code": "InternalServiceError", "message": message}
    if ps.outcome(task) == "violation":
        message = scenario.message or ERRORS["OutputVideoSensitiveContentDetected"][2]
        return "failed", {"code": "OutputVideoSensitiveContentDetected", "message": message}
    return "succeeded", None


def _signed(ps: ProviderState, origin: str, path: str) -> str:
    # The Ark URL is a signed TOS link valid ~24 h; here the shared /media host checks `se=`.
    expiry = int(ps.sim.wall() + ps.settings.url_ttl)
    return f"{origin}{path}?se={expiry}&sig={ps.sim.sign(path, expiry)}"


def render(ps: ProviderState, task: ProviderTask, origin: str) -> dict[str, Any]:
    """The task object GET returns (and list items)."""
    status, error = _status(ps, task)
    p = task.params
    duration = int(p.get("duration") or 5)
    content: dict[str, Any] = {}
    usage: dict[str, Any] = {"completion_tokens": 0, "total_tokens": 0}
    if status == "succeeded":
        content = {"video_url": _signed(ps, origin, f"/media/{task.id}/dl.mp4")}
        if p.get("return_last_frame"):
            content["last_frame_url"] = _signed(ps, origin, f"/media/{task.id}/thumb.png")
        tokens = (
            duration * 24 * 4320
        )  # roughly what Ark bills a 720p second; only the shape matters
        usage = {"completion_tokens": tokens, "total_tokens": tokens}
    updated = ps.finished_wall(task) if status in ("succeeded", "failed") else ps.sim.wall()
    body: dict[str, Any] = {
        "id": task.id,
        "model": task.model,
        "status": status,
        "content": content,
        "usage": usage,
        "created_at": int(task.created_wall),
        "updated_at": int(updated if not math.isinf(updated) else ps.sim.wall()),
        "seed": p.get("seed") if p.get("seed") is not None else 42,
        "resolution": p.get("resolution") or "720p",
        "ratio": p.get("ratio") or "16:9",
        "duration": duration,
        "framespersecond": 24,
        "generate_audio": bool(p.get("generate_audio", True)),
        "draft": bool(p.get("draft")),
        "service_tier": p.get("service_tier") or "default",
        "execution_expires_after": int(p.get("execution_expires_after") or DEFAULT_EXPIRES_AFTER),
    }
    if error is not None:
        body["error"] = error
    return body


def _content(ps: ProviderState, items: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(items, list) or not items:
        raise _fail("InvalidParameter", "content must be a non-empty array.", "content")
    prompt, images = "", []
    for n, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            prompt += item["text"]
        elif kind == "image_url":
            url = (
                (item.get("image_url") or {}).get("url")
                if isinstance(item.get("image_url"), dict)
                else None
            )
            role = item.get("role") or "first_frame"
            if not isinstance(url, str) or not url:
                raise _fail(
                    "InvalidParameter", "image_url.url is required.", f"content[{n}].image_url"
                )
            if role not in ROLES:
                raise _fail(
                    "InvalidParameter",
                    f"role must be one of {sorted(ROLES)}.",
                    f"content[{n}].role",
                )
            if ps.blocked(url):
                raise _fail("InputImageSensitiveContentDetected")
            images.append({"role": role, "url": url[:200]})
        elif kind not in ("video_url", "audio_url", "draft_task"):
            raise _fail("InvalidParameter", f"unknown content type {kind!r}.", f"content[{n}].type")
    if not prompt.strip() and not images:
        raise _fail("InvalidParameter", "content needs a text prompt or an image.", "content")
    if ps.blocked(prompt):
        raise _fail("InputTextSensitiveContentDetected")
    return prompt, images


def _check(body: dict[str, Any]) -> None:
    ratio, resolution, duration = body.get("ratio"), body.get("resolution"), body.get("duration")
    if ratio is not None and ratio not in RATIOS:
        raise _fail("InvalidParameter", f"ratio must be one of {sorted(RATIOS)}.", "ratio")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise _fail(
            "InvalidParameter", f"resolution must be one of {sorted(RESOLUTIONS)}.", "resolution"
        )
    if duration is not None and (
        not isinstance(duration, int) or not -1 <= duration <= 15 or duration == 0
    ):
        raise _fail(
            "InvalidParameter", "duration must be an integer from 2 to 15 (or -1).", "duration"
        )


async def create(request: web.Request) -> web.Response:
    """POST .../tasks: {model, content[], ratio, resolution, duration, seed, ...} -> {id}."""
    account = _auth(request)
    ps = providers_of(request)
    body = incoming(request).json
    if not isinstance(body, dict):
        raise _fail("InvalidParameter", "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("InvalidParameter", "model is required.", "model")
    if model not in account.models:
        raise _fail("ModelNotOpen", f"Your account has not activated the model {model}.")
    prompt, images = _content(ps, body.get("content"))
    _check(body)
    # An explicit null is how the SDK says "not given": drop them before storing.
    params = {k: v for k, v in body.items() if v is not None and k not in ("model", "content")}
    params["images"] = images
    task = ps.new_task(P, account, model, prompt, **params)
    return json_response({"id": task.id})


def _task(request: web.Request, account: ProviderAccount) -> ProviderTask:
    task_id = request.match_info["task_id"]
    task = providers_of(request).owned(P, task_id, account)
    if task is None:
        raise UpstreamError(
            404,
            {
                "error": {
                    "code": "ResourceNotFound",
                    "message": f"The specified task {task_id} is not found.",
                    "param": "task_id",
                    "type": "NotFound",
                }
            },
        )
    return task


async def get(request: web.Request) -> web.Response:
    """GET .../tasks/{task_id}."""
    account = _auth(request)
    task = _task(request, account)
    return json_response(render(providers_of(request), task, str(request.url.origin())))


def _page(request: web.Request, name: str, default: int, hi: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= hi:
        raise _fail("InvalidParameter", f"{name} must be an integer from 1 to {hi}.", name)
    return int(raw)


async def listing(request: web.Request) -> web.Response:
    """GET .../tasks?page_num&page_size&filter.status&filter.task_ids&filter.model -> {items, total}."""
    account = _auth(request)
    ps = providers_of(request)
    page_num, page_size = _page(request, "page_num", 1, 500), _page(request, "page_size", 10, 500)
    status = request.query.get("filter.status")
    if status is not None and status not in STATUSES:
        raise _fail(
            "InvalidParameter", f"filter.status must be one of {sorted(STATUSES)}.", "filter.status"
        )
    ids = set(request.query.getall("filter.task_ids", []))
    model = request.query.get("filter.model")
    origin = str(request.url.origin())
    items = []
    for task in sorted(ps.tasks.values(), key=lambda t: t.core.created, reverse=True):
        if task.provider != P or task.account != account.name or task.deleted:
            continue
        if (ids and task.id not in ids) or (model and task.model != model):
            continue
        item = render(ps, task, origin)
        if status is None or item["status"] == status:
            items.append(item)
    start = (page_num - 1) * page_size
    return json_response({"items": items[start : start + page_size], "total": len(items)})


async def delete(request: web.Request) -> web.Response:
    """DELETE .../tasks/{task_id}: cancel a queued task, or delete a finished task's record."""
    account = _auth(request)
    ps = providers_of(request)
    task = _task(request, account)
    status, _ = _status(ps, task)
    if status == "running":
        # assumption: Ark's wording for "running tasks cannot be cancelled" is unrecorded.
        raise _fail("InvalidParameter", "A running task cannot be cancelled.", "task_id")
    if status == "queued":
        task.cancelled_at = ps.sim.now()
    else:
        task.deleted = True
    return json_response({})


def routes() -> list[web.RouteDef]:
    """Ark's content-generation task routes."""
    return [
        web.post(BASE, create),
        web.get(BASE, listing),
        web.get(f"{BASE}/{{task_id}}", get),
        web.delete(f"{BASE}/{{task_id}}", delete),
    ]
