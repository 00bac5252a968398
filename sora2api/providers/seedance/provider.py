"""SeedanceProvider: Ark's content-generation tasks behind the Provider interface."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import ClientSession

from ...upstream.errors import Kind, UpstreamFailure
from ..base import Account, AccountInfo, ModelSpec, Output, Submission, TaskState, TaskStatus
from . import models
from .wire import call, fail, failure_kind

TASKS = "/contents/generations/tasks"
# Ark's task states -> ours; "expired" is Ark giving up on a task that never ran.
_STATES: dict[str, TaskState] = {
    "queued": "queued",
    "running": "running",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "failed",
}
# Submission.options passed through to Ark as they are, with the type Ark takes.
_OPTIONS: dict[str, type] = {
    "seed": int,
    "watermark": bool,
    "generate_audio": bool,
    "camera_fixed": bool,
    "return_last_frame": bool,
    "service_tier": str,
    "execution_expires_after": int,
}


def _refuse(message: str) -> UpstreamFailure:
    # Our own validation: nothing was sent, so the client gets a 400 and no quota is spent.
    return fail(Kind.BAD_REQUEST, message, sent=False)


def _data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def build_body(sub: Submission) -> dict[str, Any]:
    """The create body for one submission; fail(BAD_REQUEST, sent=False) if refused."""
    c = models.caps(sub.model.upstream)
    content: list[dict[str, Any]] = []
    if sub.prompt:
        content.append({"type": "text", "text": sub.prompt})
    for image in sub.images:
        if image.role not in c.roles:
            raise _refuse(
                f"image role {image.role!r} is not supported by {sub.model.id}; "
                f"supported: {', '.join(c.roles)}"
            )
        url = _data_url(image.data, image.content_type)
        content.append({"type": "image_url", "image_url": {"url": url}, "role": image.role})
    if not content:
        raise _refuse("a Seedance video needs a prompt or an image")
    if sub.remix_of:
        raise _refuse(f"{sub.model.id} cannot remix a video")
    body: dict[str, Any] = {"model": sub.model.upstream, "content": content}
    seconds = sub.seconds if sub.seconds is not None else sub.model.default_seconds
    if seconds is not None:
        allowed = sub.model.seconds or c.durations
        if seconds not in allowed:
            listed = ", ".join(str(s) for s in allowed)
            raise _refuse(f"seconds must be one of {listed} for {sub.model.id}, got {seconds}")
        body["duration"] = int(seconds)
    size = sub.size or sub.model.default_size
    if size:
        # An alias fixes its shape; a plain id takes any WxH near one of its ratios.
        if len(sub.model.sizes) == 1 and sub.size and sub.size != sub.model.sizes[0]:
            raise _refuse(f"{sub.model.id} is {sub.model.sizes[0]} only, got size {sub.size}")
        try:
            body["ratio"], body["resolution"] = models.ratio_and_resolution(size, c)
        except ValueError as exc:
            raise _refuse(f"{exc}; {sub.model.id} takes {', '.join(models.sizes_of(c))}") from None
    body.update(_options(sub.options))
    return body


def _options(options: Mapping[str, object]) -> dict[str, Any]:
    """The passthrough options that are given (None means not given: Ark gets no null)."""
    out: dict[str, Any] = {}
    for name, kind in _OPTIONS.items():
        value = options.get(name)
        if value is None:
            continue
        # bool is an int in Python: a seed of True is a mistake, not 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _refuse(f"{name} must be {kind.__name__}, got {value!r}")
        out[name] = value
    return out


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_task(data: Any, endpoint: str) -> TaskStatus:
    """One GET .../tasks/{id} answer, read leniently."""
    if not isinstance(data, dict):
        raise fail(Kind.MALFORMED, "expected a task object", endpoint=endpoint)
    stage = _str(data.get("status"))
    state = _STATES.get(stage)
    if state is None:
        raise fail(Kind.MALFORMED, f"unknown task status {stage!r}", endpoint=endpoint)
    usage_raw = data.get("usage")
    usage = (
        {k: v for k, v in usage_raw.items() if isinstance(v, int | float)}
        if isinstance(usage_raw, dict)
        else None
    )
    if state == "completed":
        content = data.get("content")
        url = _str(content.get("video_url")) if isinstance(content, dict) else ""
        if not url:
            raise fail(
                Kind.MALFORMED, "a succeeded task without content.video_url", endpoint=endpoint
            )
        # A signed link (valid ~24 h) that needs no key: the engine caches it at once.
        return TaskStatus("completed", 1.0, stage, outputs=(Output(url=url),), usage=usage or None)
    if state == "failed":
        return TaskStatus("failed", None, stage, failure=_task_failure(data, stage), usage=usage)
    return TaskStatus(state, None, stage, usage=usage)


def _task_failure(data: dict[str, Any], stage: str) -> UpstreamFailure:
    if stage == "expired":
        return fail(
            Kind.SERVER,
            "Ark expired the task before it ran (execution_expires_after passed)",
            code="expired",
        )
    err = data.get("error")
    code = _str(err.get("code")) if isinstance(err, dict) else ""
    message = _str(err.get("message")) if isinstance(err, dict) else ""
    return fail(
        failure_kind(code or None, None),
        message or code or "the task failed without a reason",
        code=code or None,
    )


def served_models(base_url: str) -> tuple[str, ...]:
    """The table's ids an account serves: Ark has no per-key model list on this API, so the
    region its host names decides (dreamina-* ids live on BytePlus only); any other host: all."""
    host = urlsplit(base_url).hostname or ""
    if host.endswith("bytepluses.com"):
        return tuple(m for m in models.TABLE if m.startswith("dreamina-"))
    if host.endswith("volces.com"):
        return tuple(m for m in models.TABLE if not m.startswith("dreamina-"))
    return tuple(models.TABLE)


class SeedanceProvider:
    """Volcengine Ark / BytePlus ModelArk Seedance video tasks (Bearer ARK API key)."""

    name = models.NAME
    poll_interval = 5.0
    # Seconds one Ark call may take (the engine may set it from upstream.request_timeout).
    request_timeout = 60.0

    def models(self, account_models: tuple[str, ...]) -> list[ModelSpec]:
        """Public ids = upstream ids, plus landscape/portrait x 5/10/15 s aliases."""
        return models.specs(account_models)

    async def onboard(self, http: ClientSession, account: Account) -> AccountInfo:
        """Check the key with the cheapest authenticated call Ark has: a one-item task list."""
        data = await call(
            http,
            account,
            "GET",
            TASKS,
            query={"page_num": "1", "page_size": "1"},
            limit=self.request_timeout,
        )
        if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
            raise fail(Kind.MALFORMED, "expected {items, total}", endpoint=f"GET {TASKS}")
        served = served_models(account.base_url)
        byteplus = (urlsplit(account.base_url).hostname or "").endswith("bytepluses.com")
        name = "BytePlus ModelArk" if byteplus else "Volcengine Ark"
        # Ark says nothing about balance or quota on this API: plan and quota stay empty.
        return AccountInfo(models=served, name=name)

    async def submit(self, http: ClientSession, account: Account, sub: Submission) -> str:
        """POST .../tasks once; the answer is {id}."""
        body = build_body(sub)
        data = await call(http, account, "POST", TASKS, json=body, limit=self.request_timeout)
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            # 2xx without an id: the task may exist, so this stays "sent" and is never resent.
            raise fail(Kind.MALFORMED, "create answered without an id", endpoint=f"POST {TASKS}")
        return task_id

    async def status(self, http: ClientSession, account: Account, task_id: str) -> TaskStatus:
        """GET .../tasks/{id}."""
        path = f"{TASKS}/{quote(task_id, safe='')}"
        data = await call(http, account, "GET", path, limit=self.request_timeout)
        return parse_task(data, f"GET {TASKS}/{{id}}")

    async def cancel(self, http: ClientSession, account: Account, task_id: str) -> None:
        """DELETE .../tasks/{id}: Ark cancels a queued task (a running one cannot be stopped)."""
        path = f"{TASKS}/{quote(task_id, safe='')}"
        await call(http, account, "DELETE", path, limit=self.request_timeout)
