"""Health and model listing."""

from __future__ import annotations

import orjson
from aiohttp import web

from .. import keys
from ..errors import NotFoundError, json_response
from ..models import MODELS


def _model_object(model_id: str) -> dict[str, object]:
    m = MODELS[model_id]
    return {
        "id": m.id,
        "object": "model",
        "created": 1735689600,
        "owned_by": "sora2api",
        "description": m.description,
    }


# The list never changes at run time: serialise it once.
_MODELS_BODY = orjson.dumps({"object": "list", "data": [_model_object(m) for m in MODELS]})


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def list_models(request: web.Request) -> web.Response:
    body = _MODELS_BODY
    api_key = request.get(keys.REQ_KEY)
    if api_key is not None:  # a created key restricted to some models lists only those
        body = request.app[keys.AUTH].keys.listing(api_key, body)
    return web.Response(body=body, content_type="application/json")


async def get_model_route(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    api_key = request.get(keys.REQ_KEY)
    if model_id not in MODELS or (api_key and api_key.models and model_id not in api_key.models):
        raise NotFoundError(f"Model {model_id!r} not found", param="model", code="model_not_found")
    return json_response(_model_object(model_id))
