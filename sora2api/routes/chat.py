"""POST /v1/chat/completions: submit a job, then stream its events or wait for its result."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .. import keys
from ..errors import BadRequestError, TimeoutError_, as_api_error, json_response
from ..flows.provider_request import parse_provider_chat, provider_model
from ..flows.request import parse_chat
from ..flows.results import error_result, render_content
from ..jobs import Event, JobFailed, JobRun
from ..progress_text import PROGRESS_FORMATS, ProgressText, render
from ..sse import DONE, KEEPALIVE, frame, open_stream, send
from .common import input_guard, optional_bool, read_object, submit


def _chunk(
    run: JobRun, model: str, created: int, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"chatcmpl-{run.job_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "job_id": run.job_id,
        "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}
        ],
    }
    if finish is not None:
        out["usage"] = {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}
    return out


def final_content(run: JobRun, content_format: str) -> str | None:
    """The final message content, or None when the job failed (not by policy)."""
    if run.result is not None:
        return render_content(run.result, content_format)
    if run.error is not None and run.error.policy:
        return render_content(error_result(run.error.message), content_format)
    return None


def content_format(request: web.Request) -> str:
    """The created API key's content format, else the configured one."""
    api_key = request.get(keys.REQ_KEY)
    configured = request.app[keys.SETTINGS].current.generation.content_format
    return (api_key and api_key.content_format) or configured


def progress_format(body: dict[str, Any], default: str) -> str:
    """The request's `progress_format`, else the configured one; a 400 for anything else."""
    value = body.get("progress_format")
    if value is None:
        return default
    if value not in PROGRESS_FORMATS:
        shown = repr(value)[:40] if isinstance(value, str) else type(value).__name__
        raise BadRequestError(
            f"'progress_format' must be one of {', '.join(PROGRESS_FORMATS)}, got {shown}",
            param="progress_format",
        )
    return str(value)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_object(request)
    stream = optional_bool(body, "stream")
    # Checked before parse_chat, which may fetch the request's media URLs.
    # A created key's own formats are the defaults for its clients; the request field overrides.
    api_key = request.get(keys.REQ_KEY)
    generation = request.app[keys.SETTINGS].current.generation
    fmt = progress_format(body, (api_key and api_key.progress_format) or generation.progress_format)
    pool = request.app[keys.POOL]
    spec = provider_model(pool.rows(), body.get("model"))
    if spec is not None:
        req = await parse_provider_chat(body, input_guard(request), spec)
    else:
        req = await parse_chat(body, input_guard(request))
    run = await submit(request, req, api="chat")
    if stream:
        return await _stream(request, run, req.model.id, fmt)
    return await _wait(request, run, req.model.id)


async def _stream(request: web.Request, run: JobRun, model: str, fmt: str) -> web.StreamResponse:
    """The streamed answer, counted among the open streams while it runs (GET /metrics)."""
    with request.app[keys.STREAMS].track():
        return await _write_stream(request, run, model, fmt)


async def _write_stream(
    request: web.Request, run: JobRun, model: str, fmt: str
) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS].current
    created = int(time.time())
    text = ProgressText()
    # Text mode sends a string in every chunk ('' where object mode sends null): the type holds.
    nothing = "" if fmt == "text" else None

    def reasoning(event: Event | None) -> dict[str, Any] | str | None:
        return nothing if event is None else render(event, fmt, text)

    def chunk(content: str | None, event: Event | None, finish: str | None = None) -> bytes:
        delta = {"content": content, "reasoning_content": reasoning(event)}
        return frame(_chunk(run, model, created, delta, finish))

    resp = await open_stream(request)
    first = Event(
        "generation", "started", f"Job {run.job_id} accepted", details={"job_id": run.job_id}
    )
    # The first chunk goes out at once: chat clients and proxies time out a silent stream.
    opening = _chunk(
        run,
        model,
        created,
        {"role": "assistant", "content": None, "reasoning_content": reasoning(first)},
    )
    if not await send(resp, frame(opening)):
        return resp
    async for event in run.follow(settings.server.keepalive_interval):
        if not await send(resp, KEEPALIVE if event is None else chunk(None, event)):
            return resp  # the client left; the job goes on and stays reachable by its id
    content = final_content(run, content_format(request))
    err = run.error
    failed = Event("error", "error", err.message, details={"error_type": err.code}) if err else None
    if content is not None:
        if failed is not None:  # a content-policy rejection: the README's error result
            await send(resp, chunk(None, failed))
        await send(resp, chunk(content, None, "stop"))
    else:
        err = err or JobFailed("internal_error", "The job ended without a result")
        failed = failed or Event("error", "error", err.message)
        # A readable line for chat UIs, then the error frame the OpenAI SDK raises on.
        await send(resp, chunk(f"Generation failed: {err.message}", failed, "stop"))
        await send(resp, frame(as_api_error(err).body()))
    await send(resp, DONE)
    return resp


async def _wait(request: web.Request, run: JobRun, model: str) -> web.Response:
    engine = request.app[keys.JOBS]
    try:
        await engine.wait(run, engine.job_timeout(run.kind))
    except TimeoutError:
        raise TimeoutError_(
            f"Job {run.job_id} is still running; fetch it later by its id"
        ) from None
    content = final_content(run, content_format(request))
    if content is None:
        raise as_api_error(
            run.error or JobFailed("internal_error", "The job ended without a result")
        )
    return json_response(
        {
            "id": f"chatcmpl-{run.job_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "job_id": run.job_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1},
        }
    )
