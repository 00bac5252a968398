"""Request helpers shared by the handlers: the one body reader, query values, job submission."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .. import keys
from ..errors import BadRequestError
from ..flows.openai_request import Upload
from ..flows.request import GenRequest
from ..jobs import JobRun
from ..metering import planned
from ..reqlog import REQ_JOB_ID, REQ_MODEL

# `x[key]` form fields: the OpenAI SDK's encoding of an object such as input_reference.
_NESTED = re.compile(r"([^\[\]]+)\[([^\[\]]+)\]")


async def read_object(
    request: web.Request, *, form: bool = False, empty_ok: bool = False
) -> dict[str, Any]:
    """The request's fields: a JSON object or, where the route takes files (`form`), a multipart
    or url-encoded form as one dict. Each failure is a 400 naming it; the size is capped by
    [security] max_body_mb (aiohttp's client_max_size, a 413 in the envelope)."""
    ctype = request.content_type
    if ctype == "multipart/form-data":
        _allow_form(ctype, form)
        return _fields(await _multipart_pairs(request))
    raw = await request.read()
    if not raw.strip():
        if empty_ok:
            return {}
        raise BadRequestError("The request body is empty; send a JSON object")
    # A url-encoded "form" that starts with { is `curl -d '{...}'`: JSON, read as such.
    if ctype == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        _allow_form(ctype, form)
        return _fields(_urlencoded_pairs(raw))
    body = _parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    return body


async def read_json(request: web.Request) -> Any:
    """Any JSON value (a route that also takes a bare list), or a 400 saying what is wrong."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequestError("The request body is empty; send JSON")
    return _parse_json(raw)


async def read_text(request: web.Request) -> str:
    """The body as UTF-8 text, or a 400."""
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"The request body is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None


def _parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"The request body is not valid JSON: {exc}") from None


def _allow_form(ctype: str, form: bool) -> None:
    if not form:
        raise BadRequestError(
            f"This endpoint takes a JSON object (Content-Type: application/json), not {ctype}"
        )


async def _multipart_pairs(request: web.Request) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    try:
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                with value.file as f:  # a temporary file: closed here, not left to the GC
                    pairs.append((key, Upload(f.read(), value.filename, value.content_type)))
            else:
                pairs.append((key, value))
    # aiohttp's multipart parser reports a malformed body with ValueError (UnicodeDecodeError
    # included), a part whose charset Python does not know with LookupError, and a part with
    # broken headers with InvalidHeader (an HttpProcessingError).
    except (ValueError, LookupError, HttpProcessingError) as exc:
        reason = exc.message if isinstance(exc, HttpProcessingError) else exc
        raise BadRequestError(f"The form body could not be parsed: {reason}") from None
    return pairs


def _urlencoded_pairs(raw: bytes) -> list[tuple[str, Any]]:
    # Strict, unlike aiohttp's post(): bytes that are not UTF-8 would reach the upstream as
    # U+FFFD in the prompt.
    try:
        return list(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict"))
    except ValueError as exc:
        raise BadRequestError(f"The form body could not be parsed: {exc}") from None


def _fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A form's fields as one dict. The OpenAI SDK's form encoding is undone: a repeated field
    or one named `x[]` becomes a list, and `x[key]` fields (an object such as input_reference)
    become a dict."""
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for key, values in grouped.items():
        nested = _NESTED.fullmatch(key)
        if nested is not None:
            parent = out.setdefault(nested[1], {})
            if isinstance(parent, dict):
                parent[nested[2]] = values[0]
            continue
        name = key.removesuffix("[]")
        if key.endswith("[]") or len(values) > 1 or name in out:
            previous = out.get(name, [])
            out[name] = [*(previous if isinstance(previous, list) else [previous]), *values]
        else:
            out[name] = values[0]
    return out


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
    """Start a job for this request and note its model and id for the request log. A created
    API key's models and limits are checked first: a refusal creates nothing."""
    engine = request.app[keys.JOBS]
    key = request.get(keys.REQ_KEY)
    if key is None:
        run = await engine.submit(req, **options)
    else:
        usage = planned(req.describe(), req.kind)
        ring = request.app[keys.AUTH].keys
        async with ring.admit(key, req.model.id, usage["video_seconds"], usage["images"]):
            run = await engine.submit(req, key_id=key.id, **options)
    request[REQ_MODEL] = req.model.id
    request[REQ_JOB_ID] = run.job_id
    return run
