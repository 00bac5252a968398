"""The `openai` provider: any upstream that speaks OpenAI's /v1/videos (new-api, LiteLLM proxy,
resellers, vLLM-Omni). base_url is what the openai SDK takes, e.g. https://gateway.example/v1."""

from __future__ import annotations

from typing import Any

import aiohttp

from ...upstream.errors import Kind, UpstreamFailure
from ..base import Account, AccountInfo, ModelSpec, Output, Submission, TaskStatus
from . import wire

_SORA_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
_VEO_SIZES = ("1280x720", "720x1280", "1920x1080", "1080x1920")
# What is known of common video models (OpenAI's docs, the SDK's literals, LiteLLM's mappings).
# A model not listed here is served too, with the choices left to the upstream.
KNOWN: dict[str, dict[str, Any]] = {
    "sora-2": {"seconds": (4, 8, 12), "sizes": _SORA_SIZES, "remix": True},
    "sora-2-pro": {"seconds": (4, 8, 12), "sizes": _SORA_SIZES, "remix": True},
    "veo-3.1": {"seconds": (4, 6, 8), "sizes": _VEO_SIZES},
    "veo-3.1-fast": {"seconds": (4, 6, 8), "sizes": _VEO_SIZES},
}
# The words a model entry may use to say what it is (gateways differ; OpenAI says nothing).
_KIND_FIELDS = ("type", "modality", "model_type", "supported_endpoint_types", "endpoints")


def spec_for(model_id: str) -> ModelSpec:
    """The public model of one upstream model name (the same id)."""
    known = KNOWN.get(model_id) or next(
        (v for k, v in KNOWN.items() if model_id.startswith(k + "-20")), {}
    )
    seconds: tuple[int, ...] = known.get("seconds", ())
    sizes: tuple[str, ...] = known.get("sizes", ())
    return ModelSpec(
        id=model_id,
        provider="openai",
        upstream=model_id,
        kind="video",
        seconds=seconds,
        default_seconds=seconds[0] if seconds else None,
        sizes=sizes,
        default_size=sizes[0] if sizes else None,
        image_input=True,
        image_roles=("first_frame",),
        remix=bool(known.get("remix")),
        description=f"Video via an OpenAI-Videos gateway ({model_id})",
    )


def video_models(entries: list[Any]) -> tuple[str, ...]:
    """The video models of a /models list; all of them when no entry says what it is."""
    ids: list[str] = []
    typed: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        ids.append(entry["id"])
        says = [entry[f] for f in _KIND_FIELDS if f in entry]
        if says and "video" in str(says).lower():
            typed.append(entry["id"])
    told = any(any(f in e for f in _KIND_FIELDS) for e in entries if isinstance(e, dict))
    return tuple(dict.fromkeys(typed if told else ids))


def _status(obj: dict[str, Any], account: Account, endpoint: str) -> TaskStatus:
    word = str(obj.get("status") or "")
    if not word:
        raise wire.failure(Kind.MALFORMED, f"no status in {str(obj)[:160]!r}", endpoint=endpoint)
    state = wire.state_of(word)
    progress = wire.progress_of(obj.get("progress"))
    if state == "completed":
        task_id = wire.task_id_of(obj)
        if task_id is None:
            raise wire.failure(Kind.MALFORMED, "a completed video without an id", endpoint=endpoint)
        output = Output(
            url=wire.url(account, f"/videos/{task_id}/content"),
            headers=wire.auth_headers(account),
        )
        return TaskStatus("completed", 1.0, word, outputs=(output,), usage=_dict(obj.get("usage")))
    if state in ("failed", "cancelled"):
        err = obj.get("error")
        code = message = None
        if isinstance(err, dict):
            code = str(err.get("code")) if err.get("code") not in (None, "") else None
            message = str(err.get("message") or "") or None
        elif isinstance(err, str) and err:
            message = err
        message = message or str(obj.get("fail_reason") or "") or f"the video {word}"
        if code == "cancelled":
            state = "cancelled"
        kind = Kind.CONTENT_POLICY if wire.is_policy(code, message) else Kind.BAD_REQUEST
        fail = wire.failure(kind, message, code=code, endpoint=endpoint)
        return TaskStatus(state, progress, word, failure=fail)
    return TaskStatus(state, progress, word)


def _dict(value: Any) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None


class OpenAIProvider:
    """An OpenAI-Videos-shaped gateway behind the provider interface."""

    name = "openai"
    # Gateways ask for about a second between polls (openai-poll-after-ms); a few is polite.
    poll_interval = 3.0

    def models(self, account_models: tuple[str, ...]) -> list[ModelSpec]:
        return [spec_for(m) for m in account_models]

    async def onboard(self, http: aiohttp.ClientSession, account: Account) -> AccountInfo:
        data = await wire.call(http, account, "GET", "/models", endpoint="models", timeout=30)
        listing = wire.unwrap(data, 200, "models") if isinstance(data, dict) else data
        entries = listing.get("data") if isinstance(listing, dict) else listing
        if not isinstance(entries, list):
            raise wire.failure(
                Kind.MALFORMED, f"no model list in {str(data)[:160]!r}", endpoint="models"
            )
        return AccountInfo(models=video_models(entries))

    async def submit(self, http: aiohttp.ClientSession, account: Account, sub: Submission) -> str:
        if sub.remix_of:
            endpoint = "remix"
            data = await wire.call(
                http,
                account,
                "POST",
                f"/videos/{sub.remix_of}/remix",
                json={"prompt": sub.prompt},
                endpoint=endpoint,
                timeout=120,
            )
        else:
            endpoint = "create"
            fields: dict[str, str] = {"model": sub.model.upstream, "prompt": sub.prompt}
            if sub.seconds is not None:
                fields["seconds"] = str(sub.seconds)  # the SDK sends it as a string
            if sub.size:
                fields["size"] = sub.size
            if sub.images:
                # An image is sent as the SDK sends it: multipart with an input_reference file.
                form = aiohttp.FormData()
                for name, value in fields.items():
                    form.add_field(name, value)
                image = sub.images[0]
                ext = image.content_type.rsplit("/", 1)[-1]
                form.add_field(
                    "input_reference",
                    image.data,
                    filename=f"input.{ext}",
                    content_type=image.content_type,
                )
                data = await wire.call(
                    http, account, "POST", "/videos", data=form, endpoint=endpoint, timeout=120
                )
            else:
                data = await wire.call(
                    http, account, "POST", "/videos", json=fields, endpoint=endpoint, timeout=120
                )
        obj = wire.unwrap(data, 200, endpoint)
        task_id = wire.task_id_of(obj)
        if task_id is None:
            # The create was answered, so it may well have made a task we cannot name.
            raise wire.failure(
                Kind.MALFORMED,
                f"the answer names no video id: {str(obj)[:160]!r}",
                endpoint=endpoint,
            )
        return task_id

    async def status(
        self, http: aiohttp.ClientSession, account: Account, task_id: str
    ) -> TaskStatus:
        data = await wire.call(
            http, account, "GET", f"/videos/{task_id}", endpoint="retrieve", timeout=30
        )
        return _status(wire.unwrap(data, 200, "retrieve"), account, "retrieve")

    async def cancel(self, http: aiohttp.ClientSession, account: Account, task_id: str) -> None:
        try:
            await wire.call(
                http, account, "DELETE", f"/videos/{task_id}", endpoint="delete", timeout=30
            )
        except UpstreamFailure as exc:
            if exc.kind is not Kind.NOT_FOUND:  # already gone is what we wanted
                raise
