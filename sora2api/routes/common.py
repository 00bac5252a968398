"""Small request helpers shared by the handlers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .. import keys
from ..errors import BadRequestError
from ..flows.request import GenRequest
from ..jobs import JobRun
from ..reqlog import REQ_JOB_ID, REQ_MODEL


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or a 400 that says what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequestError("The request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"The request body is not valid JSON: {exc}") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    return body


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"Query parameter {name!r} must be an integer", param=name) from None
    if not lo <= value <= hi:
        raise BadRequestError(f"Query parameter {name!r} must be between {lo} and {hi}", param=name)
    return value


def optional_bool(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequestError(f"'{name}' must be true or false", param=name)
    return value


async def submit(request: web.Request, req: GenRequest, **options: Any) -> JobRun:
    """Start a job for this request and note its model and id for the request log."""
    run = await request.app[keys.JOBS].submit(req, **options)
    request[REQ_MODEL] = req.model.id
    request[REQ_JOB_ID] = run.job_id
    return run
