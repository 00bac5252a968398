"""The admin API of webhooks: every delivery with its attempts, and the bootstrap key's secret."""

from __future__ import annotations

from aiohttp import web

from .. import keys
from ..errors import BadRequestError, NotFoundError, PermissionError_, json_response
from ..mask import mask
from ..store.webhooks import STATUSES
from ..webhooks import delivery_object
from .common import query_int


async def list_deliveries(request: web.Request) -> web.Response:
    """GET /api/admin/webhooks/deliveries?key_id=&status=&after=&limit=: newest first."""
    store = request.app[keys.STORE]
    limit = query_int(request, "limit", 50, 1, 200)
    raw_key = request.query.get("key_id") or None
    if raw_key is not None and (
        not raw_key.isascii() or not raw_key.isdigit() or len(raw_key) > 18
    ):
        raise BadRequestError("Query parameter 'key_id' must be a whole number", param="key_id")
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequestError(
            f"Query parameter 'status' must be one of {', '.join(STATUSES)}", param="status"
        )
    before = None
    after = request.query.get("after") or None
    if after is not None:
        anchor = await store.webhooks.get(after[:100])
        if anchor is None:
            raise NotFoundError(f"No webhook delivery with id {after[:100]!r}", param="after")
        before = (anchor.created_at, anchor.id)
    rows = await store.webhooks.page(
        key_id=int(raw_key) if raw_key is not None else None,
        status=status,
        before=before,
        limit=limit + 1,
    )
    return json_response(
        {
            "object": "list",
            "data": [delivery_object(r) for r in rows[:limit]],
            "has_more": len(rows) > limit,
            "backlog": await request.app[keys.WEBHOOKS].backlog(),
        }
    )


async def bootstrap_secret(request: web.Request) -> web.Response:
    """GET /api/admin/webhooks/secret: the signing secret of the bootstrap key's jobs, masked
    unless ?reveal=1 (an explicit click)."""
    if request.app[keys.AUTH].password_is_default:
        raise PermissionError_(
            "Change the default admin password first: POST /api/admin/password",
            code="password_change_required",
        )
    secret = request.app[keys.WEBHOOKS].bootstrap_secret
    reveal = request.query.get("reveal") in ("1", "true")
    return json_response({"webhook_secret": secret if reveal else mask(secret), "revealed": reveal})
