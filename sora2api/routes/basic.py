"""Health and model listing."""

from __future__ import annotations

from aiohttp import web

from .. import keys
from ..errors import NotFoundError, json_response


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def list_models(request: web.Request) -> web.Response:
    """Every model id some usable account serves (kept serialised until a token row changes)."""
    pool = request.app[keys.POOL]
    body = request.app[keys.LISTING].body(pool.rows, pool.version)
    api_key = request.get(keys.REQ_KEY)
    if api_key is not None:  # a created key restricted to some models lists only those
        body = request.app[keys.AUTH].keys.listing(api_key, body)
    return web.Response(body=body, content_type="application/json")


async def get_model_route(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    pool = request.app[keys.POOL]
    found = request.app[keys.LISTING].find(pool.rows, pool.version, model_id)
    api_key = request.get(keys.REQ_KEY)
    if found is None or (api_key and api_key.models and model_id not in api_key.models):
        raise NotFoundError(f"Model {model_id!r} not found", param="model", code="model_not_found")
    return json_response(found)
