"""One middleware: parse the body, journal the request, fire injected faults, render SimErrors."""

from __future__ import annotations

import dataclasses

from aiohttp import web
from aiohttp.typedefs import Handler

from .common import bearer
from .errors import SimError
from .faults import (
    CONNECTION_KINDS,
    CREATED_KINDS,
    CREATED_PREFIX,
    MEDIA_KINDS,
    error_response,
    fault_response,
    gateway_timeout,
    wait_unless_gone,
)
from .incoming import Incoming, read_incoming
from .keys import INCOMING, MEDIA_FAULT, SIM_STATE
from .records import Fault, JournalEntry
from .routes_auth import SESSION_COOKIE
from .state import SimState

CONTROL_PREFIX = "/_sim/"


@web.middleware
async def simulate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything but the control API passes through here."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = request.app[SIM_STATE]
    # One byte over the limit is enough to tell an oversized upload from a full-size one.
    body = await read_incoming(request, part_limit=state.settings.upload_max_bytes + 1)
    request[INCOMING] = body
    credentials, email = _identify(state, request, body)
    entry = JournalEntry(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=_headers(request),
        json=body.json,
        form={name: part.describe() for name, part in body.parts.items()},
        account_email=email,
        status=0,
        ts=state.wall(),
    )
    state.journal.append(entry)
    state.counts[(request.method, request.path)] += 1
    if email is not None:
        state.accounts[email].polls[request.path] += 1
    fault = state.match_fault(request.method, request.path, credentials, email)
    entry.fault = fault.kind if fault else None
    try:
        response = await _respond(state, request, handler, fault)
    except SimError as err:
        response = error_response(err)
    except web.HTTPException as exc:
        entry.status = exc.status
        raise
    # A dropped connection (reset, abandoned hang) has no status: the journal keeps 0.
    if request.transport is not None and not request.transport.is_closing():
        entry.status = response.status
    elif response.prepared:
        entry.status = response.status
    return response


async def _respond(
    state: SimState, request: web.Request, handler: Handler, fault: Fault | None
) -> web.StreamResponse:
    if fault is None:
        return await handler(request)
    if fault.kind in MEDIA_KINDS:
        request[MEDIA_FAULT] = fault
        return await handler(request)
    if fault.kind in CREATED_KINDS:
        # The handler's work stands (the task exists); only its answer is lost.
        await handler(request)
        fault = dataclasses.replace(fault, kind=fault.kind.removeprefix(CREATED_PREFIX))
    if fault.kind not in CONNECTION_KINDS:
        return fault_response(fault, request)
    seconds = float(fault.params.get("seconds", state.settings.hang_seconds))
    if fault.kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client
    if fault.kind == "hang":
        finished = await wait_unless_gone(request, seconds, state.closing)
        return gateway_timeout() if finished else web.Response(status=499)
    # slow_first_byte: hold the response back, then answer normally.
    if not await wait_unless_gone(request, float(fault.params.get("seconds", 5.0)), state.closing):
        return web.Response(status=499)
    return await handler(request)


def _identify(
    state: SimState, request: web.Request, body: Incoming
) -> tuple[tuple[str, ...], str | None]:
    """The credentials the request carries and the account they belong to (whatever their state)."""
    found: list[str] = []
    email: str | None = None
    token = bearer(request)
    if token:
        found.append(token)
        record = state.tokens.get(token)
        email = record.email if record else None
    # Gemini keys ride in x-goog-api-key or ?key=, so faults can be scoped to them (`token`).
    google_key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if google_key:
        found.append(google_key)
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        found.append(session)
        email = email or state.sessions.get(session)
    if isinstance(body.json, dict) and isinstance(body.json.get("refresh_token"), str):
        rt = body.json["refresh_token"]
        found.append(rt)
        email = email or state.refresh_tokens.get(rt) or state.used_refresh_tokens.get(rt)
    if email is not None and email not in state.accounts:
        email = None
    return tuple(found), email


def _headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers
