"""The admin API behind the panel: login, credentials, settings, request log, stats, jobs and
characters. Handlers parse, call one function and render; the queries sit at the bottom."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import web

from .. import keys
from ..auth import AdminSession, client_address
from ..errors import BadRequestError, ConflictError, NotFoundError, json_response
from ..jobs import ACTIVE, JobEngine
from ..mask import mask, mask_email
from ..reqlog import REQLOG
from ..store import CharacterRow, JobRow, Store
from ..upstream.errors import Kind, UpstreamFailure
from .common import query_int, read_object
from .public import collect_stats, positive_int, start_of_today, upstream_error

SESSION_COOKIE = "sora2api_session"
PRECEDENCE = "environment > panel > config.toml"
JOB_STATUSES = ("queued", "in_progress", "completed", "failed", "cancelled")
JOB_KINDS = ("image", "video", "character")
VISIBILITIES = ("public", "private")


def _session(request: web.Request) -> AdminSession:

    return request[keys.REQ_ADMIN]


def _string(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise BadRequestError(f"'{name}' is required and must be a non-empty string", param=name)
    return value


def _bool_query(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequestError(
        f"Query parameter {name!r} must be true or false, got {raw!r}", param=name
    )


def _path_id(request: web.Request) -> int:
    value = positive_int(request.match_info["id"], "id")
    assert value is not None  # a path segment is never empty
    return value


def _drop_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


# -- login and credentials ---------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    """POST /api/login {username, password} → a session token, also set as an HttpOnly cookie."""
    body = await read_object(request)
    username = _string(body, "username") or ""
    password = _string(body, "password") or ""
    auth = request.app[keys.AUTH]
    token, expires_at = await auth.login(
        username, password, client_address(request, request.app[keys.CONFIG].server.trusted_proxies)
    )
    response = json_response(
        {
            "success": True,
            "token": token,
            "expires_at": expires_at,
            "username": auth.admin_username,
            "must_change_password": auth.password_is_default,
            "message": "Change the default password before anything else"
            if auth.password_is_default
            else "Logged in",
        }
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(1, math.ceil(expires_at - time.time())),
        path="/",
        httponly=True,
        samesite="Strict",
        # Behind nginx TLS aiohttp sees plain http: the public URL tells the truth.
        secure=request.secure
        or request.app[keys.SETTINGS].current.server.public_url.startswith("https://"),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """POST /api/logout: this session ends now."""
    await request.app[keys.AUTH].logout(request)
    response = json_response({"success": True})
    _drop_session_cookie(response)
    return response


async def me(request: web.Request) -> web.Response:
    """GET /api/admin/me: who is logged in and whether the password must change first."""
    session = _session(request)
    auth = request.app[keys.AUTH]
    return json_response(
        {
            "username": session.username,
            "must_change_password": auth.password_is_default,
            "expires_at": session.expires_at,
            "api_key": mask(auth.api_key),
        }
    )


async def change_password(request: web.Request) -> web.Response:
    """POST /api/admin/password {old_password, new_password, username?}: every session ends."""
    body = await read_object(request)
    old = _string(body, "old_password") or ""
    new = _string(body, "new_password") or ""
    username = _string(body, "username", required=False)
    await request.app[keys.AUTH].change_password(old, new, username)
    response = json_response(
        {
            "success": True,
            "relogin": True,
            "message": "Password changed. Every session was signed out: log in again.",
        }
    )
    _drop_session_cookie(response)
    return response


async def set_api_key(request: web.Request) -> web.Response:
    """POST /api/admin/apikey {api_key}: saved, and the old key stops working at once."""
    body = await read_object(request)
    new_key = _string(body, "api_key") or ""
    await request.app[keys.AUTH].set_api_key(new_key)
    return json_response({"success": True, "api_key": mask(new_key)})


# -- settings ----------------------------------------------------------------------------------


async def get_settings(request: web.Request) -> web.Response:
    """GET /api/admin/settings: every editable field, its value and where it comes from."""
    settings = request.app[keys.SETTINGS]
    return json_response({"settings": settings.describe(), "precedence": PRECEDENCE})


async def put_settings(request: web.Request) -> web.Response:
    """PUT /api/admin/settings {"values": {"section.key": value}}: all or nothing, live at once."""
    body = await read_object(request)
    values = body.get("values")
    if not isinstance(values, dict) or not values:
        raise BadRequestError(
            "'values' must be a non-empty object of {\"section.key\": value}", param="values"
        )
    settings = request.app[keys.SETTINGS]
    changed = await settings.update(values)
    return json_response(
        {
            "success": True,
            "changed": changed,
            "settings": settings.describe(),
            "precedence": PRECEDENCE,
        }
    )


# -- request log and stats ---------------------------------------------------------------------


async def list_logs(request: web.Request) -> web.Response:
    """GET /api/logs?limit=100&offset=0: newest first, with each job's outcome and token."""
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    return json_response(await request.app[REQLOG].list(limit, offset))


async def admin_stats(request: web.Request) -> web.Response:
    """GET /api/stats: the public counters plus running jobs and request counts."""
    app = request.app
    await app[REQLOG].flush()
    stats = await collect_stats(app[keys.STORE], app[keys.POOL])
    stats["requests"] = await request_counts(app[keys.STORE])
    return json_response(stats)


# -- jobs --------------------------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    """GET /api/jobs?status=&kind=&limit=50&offset=0: running first, then newest."""
    status = request.query.get("status") or None
    if status is not None and status not in (*JOB_STATUSES, "active"):
        raise BadRequestError(
            f"Query parameter 'status' must be one of {', '.join(JOB_STATUSES)} or active, got {status!r}",
            param="status",
        )
    kind = request.query.get("kind") or None
    if kind is not None and kind not in JOB_KINDS:
        raise BadRequestError(
            f"Query parameter 'kind' must be one of {', '.join(JOB_KINDS)}, got {kind!r}",
            param="kind",
        )
    limit = query_int(request, "limit", 50, 1, 500)
    offset = query_int(request, "offset", 0, 0, 10**9)
    engine = request.app[keys.JOBS]
    rows = await engine.store.jobs.page(status, kind, limit, offset, ACTIVE)
    jobs = [job_view(r, engine) for r in rows]
    return json_response({"jobs": jobs, "count": len(jobs), "limit": limit, "offset": offset})


async def get_job(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}: one job with its request, result and (while live) its events."""
    engine = request.app[keys.JOBS]
    return json_response(
        job_view(await job_row(engine, request.match_info["id"]), engine, detail=True)
    )


async def cancel_job(request: web.Request) -> web.Response:
    """POST /api/jobs/{id}/cancel: stop polling, give the token slot back, mark it cancelled."""
    engine = request.app[keys.JOBS]
    job_id = request.match_info["id"]
    row = await job_row(engine, job_id)
    if row.status not in ACTIVE or not await engine.cancel(job_id):
        row = await job_row(engine, job_id)
        raise ConflictError(
            f"Job {job_id} is not running (status {row.status})", code="job_not_running"
        )
    return json_response({"success": True, "job": job_view(await job_row(engine, job_id), engine)})


# -- characters --------------------------------------------------------------------------------


async def list_characters(request: web.Request) -> web.Response:
    """GET /api/characters?token_id=&include_deleted=false"""
    token_id = positive_int(request.query.get("token_id"), "token_id")
    include_deleted = _bool_query(request, "include_deleted")
    rows = await request.app[keys.STORE].characters.find(token_id, include_deleted)
    return json_response({"characters": [character_view(r) for r in rows], "count": len(rows)})


async def characters_by_token(request: web.Request) -> web.Response:
    """GET /api/characters/by-token/{id}: the characters one token created (404 for no token)."""
    token_id = _path_id(request)
    request.app[keys.POOL].state(token_id)
    rows = await request.app[keys.STORE].characters.find(
        token_id, _bool_query(request, "include_deleted")
    )
    return json_response({"characters": [character_view(r) for r in rows], "count": len(rows)})


async def get_character(request: web.Request) -> web.Response:
    """GET /api/characters/{id}"""
    row = await character_row(request.app[keys.STORE], _path_id(request))
    return json_response({"character": character_view(row)})


async def set_character_visibility(request: web.Request) -> web.Response:
    """POST /api/characters/{id}/visibility {visibility: public|private}: changed on Sora, then here."""
    char_id = _path_id(request)
    body = await read_object(request)
    visibility = body.get("visibility")
    if visibility not in VISIBILITIES:
        raise BadRequestError(
            f"'visibility' must be public or private, got {visibility!r}", param="visibility"
        )
    row = await set_visibility(request.app, char_id, str(visibility))
    return json_response({"success": True, "character": character_view(row)})


async def delete_character(request: web.Request) -> web.Response:
    """DELETE /api/characters/{id}: deleted on Sora (already gone is fine), then marked here."""
    outcome = await remove_character(request.app, _path_id(request))
    return json_response({"success": True, **outcome})


# -- queries and actions -----------------------------------------------------------------------


async def request_counts(store: Store) -> dict[str, int]:
    return asdict(await store.request_log.counts(start_of_today(time.time())))


async def job_row(engine: JobEngine, job_id: str) -> JobRow:
    row = await engine.store.jobs.with_email(job_id)
    if row is None:
        raise NotFoundError(f"No job with id {job_id!r}", param="id")
    return row


def _loads(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def job_view(row: JobRow, engine: JobEngine, *, detail: bool = False) -> dict[str, Any]:
    """A job as the panel shows it: no token, only its id and masked email."""
    result = _loads(row.result)
    urls: list[str] = []
    if isinstance(result, dict):
        urls = list(result.get("urls") or ([result["url"]] if result.get("url") else []))
    out: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "api": row.api,
        "model": row.model,
        "status": row.status,
        # The state-machine step (queued, submitting, submitted, polling, caching or final).
        "phase": row.phase or "",
        "progress": row.progress or 0,
        "stage": row.stage or "",
        "token_id": row.token_id,
        "token_email": mask_email(row.token_email),
        "prompt": row.prompt or "",
        "result_urls": urls,
        "result": result,
        "error": {"code": row.error_code, "message": row.error_message or ""}
        if row.error_code
        else None,
        "remixed_from": row.remixed_from,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "completed_at": row.completed_at,
        "updated_at": row.updated_at,
    }
    if detail:
        run = engine.run_of(row.id)
        out["request"] = _loads(row.request)
        out["upstream_task_id"] = row.upstream_task_id
        out["events"] = [e.as_dict() for e in run.events] if run is not None else []
    return out


async def character_row(store: Store, char_id: int) -> CharacterRow:
    row = await store.characters.get(char_id)
    if row is None:
        raise NotFoundError(f"No character with id {char_id}", param="id")
    return row


def character_view(row: CharacterRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "token_id": row.token_id,
        "token_email": mask_email(row.token_email),
        "cameo_id": row.cameo_id,
        "character_id": row.character_id,
        "username": row.username,
        "display_name": row.display_name,
        "visibility": row.visibility,
        "job_id": row.job_id,
        "deleted": bool(row.deleted),
        "created_at": row.created_at,
    }


async def set_visibility(app: web.Application, char_id: int, visibility: str) -> CharacterRow:
    store, pool = app[keys.STORE], app[keys.POOL]
    row = await character_row(store, char_id)
    if row.deleted:
        raise ConflictError(f"Character {char_id} was deleted", code="character_deleted")
    if row.token_id is None or all(t.id != row.token_id for t in pool.tokens()):
        raise ConflictError(
            f"Character {char_id} belongs to token {row.token_id}, which no longer exists",
            code="token_missing",
        )
    token = pool.state(row.token_id)
    try:
        await app[keys.CLIENT].update_cameo(
            str(token.row["access_token"]),
            row.cameo_id,
            {"visibility": visibility},
            token.row.get("proxy") or None,
        )
    except UpstreamFailure as failure:
        raise await upstream_error(pool, token, failure) from None
    await store.characters.set_visibility(char_id, visibility)
    return await character_row(store, char_id)


async def remove_character(app: web.Application, char_id: int) -> dict[str, Any]:
    """Delete on Sora with the owning token, then mark the row; says what happened upstream."""
    store, pool = app[keys.STORE], app[keys.POOL]
    row = await character_row(store, char_id)
    if row.deleted:
        return {"id": char_id, "upstream": "already_deleted", "message": "Already deleted"}
    token = next((t for t in pool.tokens() if t.id == row.token_id), None)
    if not row.character_id:
        upstream, message = "skipped", "The character was never finalized on Sora; removed here"
    elif token is None:
        upstream = "skipped"
        message = (
            f"Its token ({row.token_id}) no longer exists, so it could not be deleted on "
            "Sora; removed here only"
        )
    else:
        try:
            await app[keys.CLIENT].delete_character(
                str(token.row["access_token"]), row.character_id, token.row.get("proxy") or None
            )
            upstream, message = "deleted", "Deleted on Sora and here"
        except UpstreamFailure as failure:
            if failure.kind is not Kind.NOT_FOUND:
                raise await upstream_error(pool, token, failure) from None
            upstream, message = "already_gone", "Sora no longer had it; removed here"
    await store.characters.mark_deleted(char_id)
    return {"id": char_id, "upstream": upstream, "message": message}
