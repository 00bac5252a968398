"""Uploads, task creation and the list endpoints clients poll (contract 2.3-2.5)."""

from __future__ import annotations

import base64
import binascii

import orjson
from aiohttp import web

from .backend import MAX_RECENT_TASKS
from .common import (
    authenticate,
    incoming,
    json_object,
    query_int,
    renderer,
    require_sentinel,
    require_sora2,
    state_of,
)
from .errors import SimError, invalid
from .faults import json_response
from .incoming import Part
from .media import sniff_image
from .payloads import parse_image, parse_video
from .state import SimState


def checked_file(state: SimState, part: Part | None, *, kind: str) -> Part:
    """The uploaded `file` part, rejecting what the backend rejects."""
    if part is None or part.filename is None:
        raise invalid("A file is required", param="file")
    if part.size == 0:
        raise invalid("The uploaded file is empty", param="file")
    if part.truncated or part.size > state.settings.upload_max_bytes:
        limit = state.settings.upload_max_bytes
        raise SimError(
            413, f"File is too large (max {limit} bytes)", code="file_too_large", param="file"
        )
    if state.settings.sniff_uploads and kind == "image" and sniff_image(part.data) is None:
        raise invalid("Unsupported file type", param="file")
    return part


async def upload(request: web.Request) -> web.Response:
    """POST /backend/uploads: parts `file` and `file_name` -> `{"id": "media_…"}`."""
    account = authenticate(request)
    state = state_of(request)
    body = incoming(request)
    part = checked_file(state, body.part("file"), kind="image")
    file_name = body.part("file_name")
    if file_name is None or not (file_name.text() or "").strip():
        raise invalid("file_name is required", param="file_name")
    media_id = state.ids.media()
    state.uploads[media_id] = account.email
    return json_response(
        {
            "id": media_id,
            "filename": file_name.text(),
            "mime_type": sniff_image(part.data) or part.content_type,
            "size_bytes": part.size,
        }
    )


async def video_gen(request: web.Request) -> web.Response:
    """POST /backend/video_gen: an image task."""
    account = authenticate(request)
    require_sentinel(request)
    body = json_object(request)
    task = state_of(request).backend.create_image(account, parse_image(body))
    task.payload = body
    return json_response({"id": task.id})


async def recent_tasks(request: web.Request) -> web.Response:
    """GET /backend/v2/recent_tasks?limit=20[&cursor=C]: image tasks, newest first, by page."""
    account = authenticate(request)
    limit = query_int(request, "limit", MAX_RECENT_TASKS, 1, MAX_RECENT_TASKS)
    after = _after(request, "recent_tasks")
    render = renderer(request)
    shown, more = state_of(request).backend.recent_images(account, limit, after)
    cursor = _cursor("recent_tasks", shown[-1][0].id) if more else None
    items = [render.image_task(t, p) for t, p in shown]
    return json_response({"task_responses": items, "cursor": cursor})


async def nf_create(request: web.Request) -> web.Response:
    """POST /backend/nf/create: t2v, i2v, remix and character videos."""
    return await _create_video(request, storyboard=False)


async def nf_create_storyboard(request: web.Request) -> web.Response:
    """POST /backend/nf/create/storyboard."""
    return await _create_video(request, storyboard=True)


async def _create_video(request: web.Request, *, storyboard: bool) -> web.Response:
    account = authenticate(request)
    require_sentinel(request)
    require_sora2(account)
    body = json_object(request)
    task = state_of(request).backend.create_video(account, parse_video(body), storyboard=storyboard)
    task.payload = body
    return json_response({"id": task.id, "priority": 1})


async def pending(request: web.Request) -> web.Response:
    """GET /backend/nf/pending and /nf/pending/v2: a bare array of running video tasks."""
    account = authenticate(request)
    render = renderer(request)
    shown = state_of(request).backend.pending(account)
    return json_response([render.pending_task(t, p) for t, p in shown])


async def drafts(request: web.Request) -> web.Response:
    """GET /backend/project_y/profile/drafts?limit=15[&cursor=C]: drafts, newest first, by page."""
    account = authenticate(request)
    limit = query_int(request, "limit", 15, 1, 100)
    after = _after(request, "drafts")
    render = renderer(request)
    shown, more = state_of(request).backend.drafts(account, limit, after)
    cursor = _cursor("drafts", shown[-1][0].id) if more else None
    return json_response({"items": [render.draft(d, null) for d, null in shown], "cursor": cursor})


def _cursor(scope: str, last_id: str) -> str:
    # Keyset, not offset: tasks finishing between two page reads shift offsets, never ids.
    # URL-safe without padding, since clients paste cursors into query strings unencoded.
    raw = orjson.dumps({"s": scope, "after": last_id})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _after(request: web.Request, scope: str) -> str | None:
    """The id a `cursor` query value continues after; a cursor of another list is a 400."""
    cursor = request.query.get("cursor")
    if not cursor:
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = data["after"]
        same_scope = data["s"] == scope
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise invalid("Invalid cursor", param="cursor") from exc
    if not same_scope or not isinstance(after, str):
        raise invalid("Invalid cursor", param="cursor")
    return after
