"""Requests for provider models (any id a non-Sora account serves) → a validated GenRequest.

Sora's own ids keep their parsers (request.py, openai_request.py). A provider model takes a
prompt, an optional first-frame image, and seconds and size from what the model allows; a value
it does not allow is a 400 that lists the allowed ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from .. import registry
from ..errors import BadRequestError, ConflictError
from ..media import UrlGuard
from ..models import MODELS, Model
from ..providers.base import ModelSpec
from ..store import JobRow, TokenRow
from .openai_request import _media, _present, _prompt
from .request import GenRequest, MediaInput, parse_chat

_SIZE = re.compile(r"([1-9][0-9]{1,4})x([1-9][0-9]{1,4})")
_SECONDS = re.compile(r"[0-9]{1,4}")
# Without a list from the model, any whole number of seconds up to this is passed on.
MAX_SECONDS = 600
# Chat modes that are Sora's alone (they need its posts, cameos or storyboard syntax).
_SORA_ONLY = {
    "remix": "remixing a Sora share id",
    "character": "character creation",
    "character_video": "characters",
}


def provider_model(rows: Iterable[TokenRow], model_id: Any) -> ModelSpec | None:
    """The spec when `model_id` is served by a usable non-Sora account and is not one of Sora's
    own nine ids (those keep their meaning); None otherwise."""
    if not isinstance(model_id, str) or not model_id or model_id in MODELS:
        return None
    return registry.resolve(rows, model_id)


def _listed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def choose_seconds(spec: ModelSpec, value: Any) -> int | None:
    """The requested duration, checked against the model; its default when absent."""
    if value is None or value == "":
        return spec.default_seconds
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    seconds = int(text) if _SECONDS.fullmatch(text) else None
    if spec.seconds:
        if seconds not in spec.seconds:
            raise BadRequestError(
                f"Unsupported seconds {value!r} for {spec.id}; use one of: {_listed(spec.seconds)}",
                param="seconds",
                code="unsupported_value",
            )
        return seconds
    if seconds is None or not 1 <= seconds <= MAX_SECONDS:
        raise BadRequestError(
            f"'seconds' must be a whole number from 1 to {MAX_SECONDS}, got {value!r}",
            param="seconds",
            code="unsupported_value",
        )
    return seconds


def choose_size(spec: ModelSpec, value: Any) -> str | None:
    """The requested "WxH" size, checked against the model; its default when absent."""
    if value is None or value == "":
        return spec.default_size
    size = value.strip().lower() if isinstance(value, str) else ""
    if spec.sizes:
        if size not in spec.sizes:
            raise BadRequestError(
                f"Unsupported size {value!r} for {spec.id}; use one of: {_listed(spec.sizes)}",
                param="size",
                code="unsupported_value",
            )
        return size
    if not _SIZE.fullmatch(size):
        raise BadRequestError(
            f"'size' must be WIDTHxHEIGHT (e.g. 1280x720), got {value!r}",
            param="size",
            code="unsupported_value",
        )
    return size


# Options a provider may take, with the type each must have: passed through where the request
# gives them (Seedance reads all four; a provider ignores what it does not know).
_OPTIONS: dict[str, type] = {
    "seed": int,
    "watermark": bool,
    "generate_audio": bool,
    "camera_fixed": bool,
}
_MAX_SEED = 2**32 - 1


def _option(name: str, kind: type, value: Any, low: int, high: int) -> int | bool:
    """One option's value, from JSON or from a multipart text field."""
    if isinstance(value, str):  # multipart sends every field as text
        text = value.strip().lower()
        if kind is bool and text in ("true", "false"):
            return text == "true"
        if kind is int and text.lstrip("-").isascii() and text.lstrip("-").isdigit():
            value = int(text)
    if kind is bool:
        if not isinstance(value, bool):
            raise BadRequestError(f"'{name}' must be true or false", param=name)
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError(f"'{name}' must be an integer", param=name)
    if not low <= value <= high:
        raise BadRequestError(f"'{name}' must be from {low} to {high}", param=name)
    return value


def provider_options(fields: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """The provider options of a request body; a 400 naming the field for a wrong value (the
    seed's range is the model's where it is narrower: a refused create must never be sent)."""
    low, high = spec.seed_range or (-1, _MAX_SEED)
    return {
        name: _option(name, kind, fields[name], low, high)
        for name, kind in _OPTIONS.items()
        if fields.get(name) is not None
    }


def provider_request(
    spec: ModelSpec,
    prompt: str,
    *,
    seconds: int | None,
    size: str | None,
    image: MediaInput | None = None,
    options: dict[str, Any] | None = None,
) -> GenRequest:
    """The GenRequest of a provider job (the row stores seconds and size through the Model)."""
    if image is not None and not spec.image_input:
        raise BadRequestError(f"{spec.id} takes no image input", param="input_reference")
    width, height = (int(p) for p in size.split("x")) if size else (0, 0)
    model = Model(
        spec.id, "video", spec.description, width=width, height=height, seconds=seconds or 0
    )
    return GenRequest(
        model=model, mode="video", prompt=prompt, image=image, spec=spec, options=options or {}
    )


async def parse_provider_video(
    fields: dict[str, Any], guard: UrlGuard, spec: ModelSpec
) -> GenRequest:
    """POST /v1/videos for a provider model: prompt, seconds, size, input_reference."""
    prompt = _prompt(fields)
    seconds = choose_seconds(spec, fields.get("seconds"))
    size = choose_size(spec, fields.get("size"))
    options = provider_options(fields, spec)
    for name in ("remix_target_id", "characters", "style_id"):
        if _present(fields.get(name)):
            raise BadRequestError(
                f"'{name}' is a Sora feature; {spec.id} does not take it", param=name
            )
    image_value = fields.get("input_reference", fields.get("image"))
    image = None
    if _present(image_value):
        image = await _media(image_value, guard, kind="image", param="input_reference")
    return provider_request(spec, prompt, seconds=seconds, size=size, image=image, options=options)


async def parse_provider_chat(body: Any, guard: UrlGuard, spec: ModelSpec) -> GenRequest:
    """A chat completion on a provider model: the last user turn's text (and image), with
    optional top-level `seconds` and `size`."""
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    seconds = choose_seconds(spec, body.get("seconds"))
    size = choose_size(spec, body.get("size"))
    options = provider_options(body, spec)
    # The chat parser checks messages, text and image the same way for every model; a Sora video
    # id stands in for the model so it reads the body as a video request.
    parsed = await parse_chat({**body, "model": "sora-video-10s"}, guard)
    if parsed.mode in _SORA_ONLY:
        raise BadRequestError(
            f"{_SORA_ONLY[parsed.mode]} is a Sora feature; {spec.id} does not take it",
            param="messages",
        )
    if not parsed.prompt:
        raise BadRequestError("Video generation needs a text prompt", param="messages")
    return provider_request(
        spec, parsed.prompt, seconds=seconds, size=size, image=parsed.image, options=options
    )


def provider_remix(rows: Iterable[TokenRow], source: JobRow, fields: dict[str, Any]) -> GenRequest:
    """POST /v1/videos/{id}/remix of a finished provider video: sent to the account that made
    it, as a remix of its upstream task (the caller passes remixed_from=source id)."""
    prompt = _prompt(fields)
    spec = registry.resolve(rows, str(source.model))
    if spec is None:
        raise ConflictError(
            f"No usable account serves {source.model} any more, so {source.id} cannot be remixed",
            code="remix_unavailable",
        )
    if not spec.remix:
        raise BadRequestError(f"{spec.id} cannot remix videos", param="model")
    if not source.upstream_task_id or source.token_id is None:
        raise ConflictError(f"{source.id} has no upstream task to remix", code="remix_unavailable")
    stored: dict[str, Any] = orjson.loads(source.request or "{}")
    model = Model(
        spec.id,
        "video",
        spec.description,
        width=int(stored.get("width") or 0),
        height=int(stored.get("height") or 0),
        seconds=int(stored.get("seconds") or 0),
    )
    return GenRequest(
        model=model,
        mode="remix",
        prompt=prompt,
        remix_target_id=str(source.upstream_task_id),
        spec=spec,
    )
