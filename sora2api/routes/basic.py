"""Health and model listing."""

from __future__ import annotations

import orjson
from aiohttp import web

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
    return web.Response(body=_MODELS_BODY, content_type="application/json")


async def get_model_route(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    if model_id not in MODELS:
        raise NotFoundError(f"Model {model_id!r} not found", param="model", code="model_not_found")
    return json_response(_model_object(model_id))
