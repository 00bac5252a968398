"""Turn a chat-completions body into a validated GenRequest (all 4xx happen here, before a job)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequestError
from ..media import UrlGuard
from ..models import Model, get_model
from ..providers.base import ModelSpec
from ..providers.sora.prompts import (
    Storyboard,
    extract_style,
    find_remix_id,
    is_storyboard,
    normalize_style,
    parse_storyboard,
    strip_remix_id,
    validate_remix_id,
)
from ..sniff import MIME, image_type, parse_data_url, video_type

_USERNAME = re.compile(r"[a-z0-9_.]{3,40}")
# The longest prompt any API takes (the Videos and Images APIs' limit; the upstream refuses
# longer ones only after the job has taken a token).
MAX_PROMPT = 10_000
# Chat UIs send the whole conversation, but only the newest user turn is read: these bound the work
# a body can ask for (README, request fields).
MAX_MESSAGES = 1000
MAX_PARTS = 100
# Character timestamps: seconds into the source clip, which is never an hour long.
_MAX_TIMESTAMP = 3600.0


@dataclass(frozen=True, slots=True)
class MediaInput:
    data: bytes
    ext: str  # sniffed: png | jpeg | gif | webp | mp4 | mov | webm

    @property
    def content_type(self) -> str:
        return MIME[self.ext]

    @property
    def filename(self) -> str:
        # The real type, not the reference's fixed "image.png".
        return ("image." if self.ext in ("png", "jpeg", "gif", "webp") else "video.") + self.ext


@dataclass(slots=True)
class GenRequest:
    """One generation, whatever API asked for it."""

    model: Model
    mode: str  # image | video | remix | storyboard | character | character_video
    prompt: str = ""
    image: MediaInput | None = None
    video: MediaInput | None = None
    remix_target_id: str | None = None
    style_id: str | None = None
    storyboard: Storyboard | None = None
    character: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    # A provider model (flows/provider_request.py): the job runs the generic task flow.
    spec: ModelSpec | None = None
    # Provider options the request gave (seed, watermark, generate_audio, camera_fixed).
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The job kind: image, video or character (character-only creation)."""
        if self.mode == "character":
            return "character"
        return self.model.kind

    def describe(self) -> dict[str, Any]:
        """What is stored in the job row: everything but the media bytes."""
        out: dict[str, Any] = {
            "model": self.model.id,
            "mode": self.mode,
            # The shape too: model ids from the OpenAI APIs (sora-2, gpt-image-1) do not imply it.
            "orientation": self.model.orientation or None,
            "seconds": self.model.seconds or None,
            "width": self.model.width or None,
            "height": self.model.height or None,
            "prompt": self.prompt,
            "image": {"type": self.image.ext, "size": len(self.image.data)} if self.image else None,
            "video": {"type": self.video.ext, "size": len(self.video.data)} if self.video else None,
            "remix_target_id": self.remix_target_id,
            "style_id": self.style_id,
            "storyboard": self.storyboard.backend_prompt() if self.storyboard else None,
            "character": self.character,
            "n": self.n,
        }
        if self.spec is not None:
            out["provider"] = self.spec.provider
            if self.options:
                out["options"] = self.options
        return out


async def load_media(value: Any, guard: UrlGuard, *, kind: str, param: str) -> MediaInput:
    """A data: URL, bare base64, or an http(s) URL fetched through the guard → checked bytes."""
    if isinstance(value, dict):
        value = value.get("url")
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(
            f"{param}: expected a data: URL, base64 or an http(s) URL", param=param
        )
    value = value.strip()
    if value.startswith("data:"):
        data = parse_data_url(value, param)
    elif value.startswith(("http://", "https://")):
        data = await guard.fetch_input(value, kind=kind, param=param)
    elif "://" in value[:12]:
        raise BadRequestError(f"{param}: only http, https and data: URLs are accepted", param=param)
    else:
        from ..sniff import decode_base64

        data = decode_base64(value, param)
    sniffed = image_type(data) if kind == "image" else video_type(data)
    if sniffed is None:
        what = "PNG, JPEG, GIF or WebP image" if kind == "image" else "MP4, MOV or WebM video"
        raise BadRequestError(f"{param}: the data is not a {what}", param=param)
    return MediaInput(data, sniffed)


def _character_options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequestError("character_options must be an object", param="character_options")
    opts: dict[str, Any] = {}
    username = raw.get("username")
    if username not in (None, ""):
        if not isinstance(username, str) or not _USERNAME.fullmatch(username.lower()):
            raise BadRequestError(
                "character_options.username must be 3-40 characters of a-z, 0-9, '_' or '.'",
                param="character_options.username",
            )
        opts["username"] = username.lower()
    for key in ("display_name", "instruction_set", "safety_instruction_set"):
        value = raw.get(key)
        if value not in (None, ""):
            if not isinstance(value, str) or len(value) > 2000:
                raise BadRequestError(
                    f"character_options.{key} must be a string of at most 2000 characters",
                    param=f"character_options.{key}",
                )
            opts[key] = value
    ts = raw.get("timestamps")
    if ts not in (None, ""):
        if isinstance(ts, str):
            bits = ts.split(",")
        elif isinstance(ts, list):
            bits = ts
        else:
            bits = []
        try:
            start, end = (float(b) for b in bits)
        except (TypeError, ValueError):
            raise BadRequestError(
                "character_options.timestamps must be 'start,end' in seconds, e.g. '0,3'",
                param="character_options.timestamps",
            ) from None
        # NaN fails every comparison; inf and 1e308 fail the upper bound.
        if not 0 <= start < end <= _MAX_TIMESTAMP:
            raise BadRequestError(
                "character_options.timestamps: start and end must be seconds from 0 to "
                f"{_MAX_TIMESTAMP:g}, start before end",
                param="character_options.timestamps",
            )
        opts["timestamps"] = f"{start:g},{end:g}"
    return opts


def _last_message(messages: Any) -> dict[str, Any]:
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("'messages' must be a non-empty array", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise BadRequestError(
            f"'messages' has {len(messages)} messages; at most {MAX_MESSAGES} are accepted "
            "(only the newest user message is read)",
            param="messages",
        )
    for i, msg in enumerate(messages):
        parts = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(parts, list) and len(parts) > MAX_PARTS:
            raise BadRequestError(
                f"message {i} has {len(parts)} content parts; at most {MAX_PARTS} are accepted",
                param="messages",
            )
    # The newest user turn carries the request; chat UIs send the whole history.
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role", "user") == "user":
            return msg
    raise BadRequestError("'messages' has no user message", param="messages")


async def parse_chat(body: Any, guard: UrlGuard) -> GenRequest:
    """Validate a chat-completions body; every problem is a 400 naming the field."""
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    model = get_model(body.get("model"))
    msg = _last_message(body.get("messages"))
    content = msg.get("content")
    texts: list[str] = []
    image_value: Any = body.get("image")
    video_value: Any = body.get("video")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise BadRequestError(
                    f"messages content part {i} must be an object", param="messages"
                )
            ptype = part.get("type")
            if ptype == "text":
                if not isinstance(part.get("text"), str):
                    raise BadRequestError(
                        f"content part {i}: 'text' must be a string", param="messages"
                    )
                texts.append(part["text"])
            elif ptype in ("image_url", "input_image"):
                image_value = part.get("image_url", part.get("url"))
            elif ptype == "video_url":
                video_value = part.get("video_url", part.get("url"))
            else:
                raise BadRequestError(
                    f"content part {i} has unsupported type {ptype!r} (use text, image_url or video_url)",
                    param="messages",
                )
    elif content is not None:
        raise BadRequestError(
            "message content must be a string or an array of parts", param="messages"
        )
    prompt = "\n".join(t.strip() for t in texts if t.strip())
    if len(prompt) > MAX_PROMPT:
        raise BadRequestError(
            f"The prompt is longer than {MAX_PROMPT} characters ({len(prompt)})", param="messages"
        )
    if not prompt and image_value in (None, "") and video_value in (None, ""):
        raise BadRequestError("The message has no text, image or video", param="messages")

    style = normalize_style(body.get("style_id"))
    prompt, prompt_style = extract_style(prompt)
    style = style or prompt_style
    req = GenRequest(model=model, mode=model.kind, prompt=prompt, style_id=style)

    if model.kind == "image":
        # Absent, null or empty means not given, as for video models; any other value would be
        # silently ignored by an image generation.
        for name in ("remix_target_id", "character_options"):
            if body.get(name) not in (None, "", {}):
                raise BadRequestError(
                    f"'{name}' applies to video models only; {model.id} is an image model",
                    param=name,
                )
        if video_value not in (None, ""):
            raise BadRequestError(
                "Image models take no video input; use a sora-video-* model", param="model"
            )
        if not prompt:
            raise BadRequestError("Image generation needs a text prompt", param="messages")
        if image_value not in (None, ""):
            req.image = await load_media(image_value, guard, kind="image", param="image_url")
        return req

    remix = body.get("remix_target_id")
    remix_id = validate_remix_id(remix) if remix not in (None, "") else find_remix_id(prompt)
    if remix_id:
        req.mode = "remix"
        req.remix_target_id = remix_id
        req.prompt = strip_remix_id(prompt)
        if not req.prompt:
            raise BadRequestError("A remix needs a prompt describing the change", param="messages")
        return req
    if video_value not in (None, ""):
        req.video = await load_media(video_value, guard, kind="video", param="video_url")
        req.character = _character_options(body.get("character_options"))
        req.mode = "character_video" if prompt else "character"
        return req
    if body.get("character_options") not in (None, {}):
        raise BadRequestError(
            "character_options needs a video: add a video_url part with the source clip",
            param="character_options",
        )
    if image_value not in (None, ""):
        req.image = await load_media(image_value, guard, kind="image", param="image_url")
    if is_storyboard(prompt):
        req.storyboard = parse_storyboard(prompt)
        req.mode = "storyboard"
        return req
    if not prompt:
        raise BadRequestError("Video generation needs a text prompt", param="messages")
    return req
