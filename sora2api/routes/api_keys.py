"""The admin API of API keys and usage: create (the key and webhook secret shown once), list,
change, delete; the usage report."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from .. import keys
from ..api_keys import key_object, parse_key_fields
from ..errors import BadRequestError, json_response
from ..store.usage import GROUPS
from .common import read_object


def _key_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequestError(f"API key id must be a whole number, got {raw[:40]!r}", param="id")
    return int(raw)


async def create_key(request: web.Request) -> web.Response:
    """POST /api/admin/keys: 201 with the key and its webhook secret, shown this once."""
    fields = parse_key_fields(await read_object(request), creating=True)
    row, key = await request.app[keys.AUTH].keys.create(fields)
    body = {**key_object(row), "key": key, "webhook_secret": row.webhook_secret}
    return json_response(body, status=201)


async def list_keys(request: web.Request) -> web.Response:
    """GET /api/admin/keys: every key, the key itself as its last 4 characters."""
    rows = request.app[keys.AUTH].keys.rows()
    return json_response({"object": "list", "data": [key_object(r) for r in rows]})


async def update_key(request: web.Request) -> web.Response:
    """PUT /api/admin/keys/{id}: change any field, {"enabled": false} disables it."""
    key_id = _key_id(request)
    fields = parse_key_fields(await read_object(request), creating=False)
    return json_response(key_object(await request.app[keys.AUTH].keys.update(key_id, fields)))


async def delete_key(request: web.Request) -> web.Response:
    """DELETE /api/admin/keys/{id}: the key stops working at once; its jobs and usage stay."""
    key_id = _key_id(request)
    await request.app[keys.AUTH].keys.delete(key_id)
    return json_response({"id": key_id, "object": "api_key.deleted", "deleted": True})


def _time(request: web.Request, name: str) -> float | None:
    """A query time: Unix seconds, or an ISO date / date-time (UTC unless it says otherwise)."""
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        return float(int(raw))
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequestError(
            f"Query parameter {name!r} must be Unix seconds or an ISO date, got {raw[:40]!r}",
            param=name,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


async def usage(request: web.Request) -> web.Response:
    """GET /api/admin/usage?key=&from=&to=&group_by=day|model|provider."""
    group_by = request.query.get("group_by") or "day"
    if group_by not in GROUPS:
        raise BadRequestError(
            f"Query parameter 'group_by' must be one of {', '.join(GROUPS)}, got {group_by[:40]!r}",
            param="group_by",
        )
    raw_key = request.query.get("key") or ""
    key_id: int | None = None
    if raw_key:
        if not raw_key.isascii() or not raw_key.isdigit() or len(raw_key) > 18:
            raise BadRequestError(
                f"Query parameter 'key' must be an API key id, got {raw_key[:40]!r}", param="key"
            )
        key_id = int(raw_key)
        # A deleted key's usage stays reportable; an id that never had a key is a 404.
        if not await request.app[keys.STORE].usage.has_key(key_id):
            await request.app[keys.AUTH].keys.get(key_id)
    start, end = _time(request, "from"), _time(request, "to")
    if start is not None and end is not None and end < start:
        raise BadRequestError("Query parameter 'to' is before 'from'", param="to")
    report = await request.app[keys.STORE].usage.report(key_id, start, end, group_by)
    return json_response({"object": "usage", "key": key_id, "group_by": group_by, **report})
