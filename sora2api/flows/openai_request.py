"""The OpenAI Videos and Images APIs' bodies → GenRequest, with the fixed mappings to Sora's shapes.

The Sora web backend renders 10 s and 15 s clips (25 s on Pro accounts) in landscape or portrait,
and images at 360 px sizes. OpenAI documents other values, so every mapping here is explicit, and
anything else is a 400 listing what can be served: a clip is never silently made longer.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BadRequestError, ConflictError, NotFoundError, as_api_error
from ..media import UrlGuard
from ..models import MODELS, Model
from ..providers.sora.prompts import (
    extract_style,
    find_remix_id,
    is_storyboard,
    normalize_style,
    parse_storyboard,
    strip_remix_id,
    validate_remix_id,
)
from ..sniff import image_type, video_type
from ..store import JobRow
from ..upstream.errors import UpstreamFailure
from .request import MAX_PROMPT, GenRequest, MediaInput, _character_options, load_media

if TYPE_CHECKING:
    from ..jobs import JobEngine

log = logging.getLogger(__name__)

# -- the mappings (documented in the README) -----------------------------------------------------

# OpenAI's Sora model ids. All of them run on the backend's sy_8 model: requests are not routed
# to Pro accounts (sy_ore), so sora-2-pro is accepted for gateways but renders like sora-2.
OPENAI_VIDEO_MODELS = (
    "sora-2",
    "sora-2-pro",
    "sora-2-2025-10-06",
    "sora-2-pro-2025-10-06",
    "sora-2-2025-12-08",
)
DEFAULT_VIDEO_MODEL = "sora-2"
# The lengths the backend makes. OpenAI's "4", "8" and "12" have no equivalent; 25 s needs a Pro
# account, which this proxy does not pick tokens by.
VIDEO_SECONDS = ("10", "15")
# OpenAI's default is 4 s, which cannot be made; a request without `seconds` gets the shortest
# clip there is, and the video object says so.
DEFAULT_SECONDS = 10
VIDEO_SIZES = {
    "1280x720": "landscape",
    "landscape": "landscape",
    "720x1280": "portrait",
    "portrait": "portrait",
}
DEFAULT_ORIENTATION = "portrait"  # OpenAI's default size is 720x1280
ORIENTATION_SIZE = {"landscape": "1280x720", "portrait": "720x1280"}

IMAGE_SHAPES = {
    "square": "sora-image",
    "landscape": "sora-image-landscape",
    "portrait": "sora-image-portrait",
}
IMAGE_SIZES = {
    "360x360": "square",
    "1024x1024": "square",
    "540x360": "landscape",
    "1536x1024": "landscape",
    "1792x1024": "landscape",
    "360x540": "portrait",
    "1024x1536": "portrait",
    "1024x1792": "portrait",
    "square": "square",
    "landscape": "landscape",
    "portrait": "portrait",
}
# OpenAI image model names that gateways send; each renders on Sora in the shape `size` asks for.
IMAGE_ALIASES = (
    "gpt-image-1",
    "gpt-image-1.5",
    "gpt-image-1-mini",
    "gpt-image-2",
    "dall-e-2",
    "dall-e-3",
)
MAX_IMAGES = 4  # the backend's n_variants limit

_CHAR_ID = re.compile(r"char_[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9]{1,9}")
_USERNAME = re.compile(r"@?([a-z0-9_.]{3,40})")


# -- request bodies --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart body."""

    data: bytes
    filename: str
    content_type: str


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def _prompt(fields: dict[str, Any]) -> str:
    value = fields.get("prompt")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRequestError("'prompt' is required: describe what to generate", param="prompt")
    if not isinstance(value, str):
        raise BadRequestError("'prompt' must be a string", param="prompt")
    if len(value) > MAX_PROMPT:
        raise BadRequestError(
            f"'prompt' is longer than {MAX_PROMPT} characters ({len(value)})", param="prompt"
        )
    return value.strip()


def _int_field(fields: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = fields.get(name)
    if value is None or value == "":
        return default
    # Form fields arrive as text. str.isdigit() also accepts "²" and "①", which int() refuses.
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequestError(f"'{name}' must be an integer from {lo} to {hi}", param=name)
    return value


def _choice(fields: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = fields.get(name)
    if value is None or value == "":
        return allowed[0]
    if value not in allowed:
        raise BadRequestError(
            f"Unsupported {name} {value!r}; use one of: {', '.join(allowed)}", param=name
        )
    return str(value)


async def _media(value: Any, guard: UrlGuard, *, kind: str, param: str) -> MediaInput:
    """An uploaded file, a data: URL / http(s) URL / base64 string, or {"image_url": ...}."""
    what = "PNG, JPEG, GIF or WebP image" if kind == "image" else "MP4, MOV or WebM video"
    if isinstance(value, list):
        if len(value) != 1:
            raise BadRequestError(f"{param}: send exactly one {kind}", param=param)
        value = value[0]
    if isinstance(value, Upload):
        sniffed = image_type(value.data) if kind == "image" else video_type(value.data)
        if sniffed is None:
            raise BadRequestError(f"{param}: the uploaded file is not a {what}", param=param)
        return MediaInput(value.data, sniffed)
    if isinstance(value, dict):
        if value.get("file_id"):
            raise BadRequestError(
                f"{param}: file ids are not supported; upload the file or send a URL", param=param
            )
        value = value.get(f"{kind}_url", value.get("url"))
    return await load_media(value, guard, kind=kind, param=param)


# -- videos ----------------------------------------------------------------------------------------


def _seconds(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    )
    if text in VIDEO_SECONDS:
        return int(text)
    listed = ", ".join(f'"{s}"' for s in VIDEO_SECONDS)
    if text == "25":
        reason = "25 s videos need a Sora Pro account, which this proxy does not route to"
    else:
        reason = 'the Sora web backend makes 10 s and 15 s clips (OpenAI\'s "4", "8" and "12" are not available)'
    raise BadRequestError(
        f"Unsupported seconds {value!r}: {reason}; use one of {listed}",
        param="seconds",
        code="unsupported_value",
    )


def _orientation(value: Any) -> str | None:
    if value is None or value == "":
        return None
    orientation = VIDEO_SIZES.get(value.strip().lower()) if isinstance(value, str) else None
    if orientation is None:
        raise BadRequestError(
            f"Unsupported size {value!r}; use one of: 1280x720 (landscape), 720x1280 (portrait), "
            "or the words landscape / portrait",
            param="size",
            code="unsupported_value",
        )
    return orientation


def video_model(model_id: Any, seconds: Any = None, size: Any = None) -> Model:
    """The model for a /v1/videos request: an OpenAI id shaped by seconds and size, or a seed id
    (whose fixed shape must then agree with them)."""
    if model_id is None or model_id == "":
        model_id = DEFAULT_VIDEO_MODEL
    want_seconds, want_orientation = _seconds(seconds), _orientation(size)
    seed = MODELS.get(model_id) if isinstance(model_id, str) else None
    if seed is not None and seed.kind == "image":
        raise BadRequestError(
            f"{model_id!r} is an image model; use POST /v1/images/generations", param="model"
        )
    if seed is None:
        if model_id not in OPENAI_VIDEO_MODELS:
            videos = [*OPENAI_VIDEO_MODELS, *(m.id for m in MODELS.values() if m.kind == "video")]
            raise BadRequestError(
                f"Unknown model {model_id!r}; available: {', '.join(videos)}",
                param="model",
                code="model_not_found",
            )
        orientation = want_orientation or DEFAULT_ORIENTATION
        secs = want_seconds or DEFAULT_SECONDS
        return Model(
            model_id, "video", f"Video {secs}s {orientation}", orientation=orientation, seconds=secs
        )
    if want_seconds is not None and want_seconds != seed.seconds:
        raise BadRequestError(
            f"{model_id} makes {seed.seconds} s videos; omit 'seconds', or use sora-2 with "
            f'seconds "{want_seconds}"',
            param="seconds",
        )
    if want_orientation is not None and want_orientation != seed.orientation:
        raise BadRequestError(
            f"{model_id} makes {seed.orientation} videos ({ORIENTATION_SIZE[seed.orientation]}); omit "
            "'size', or use sora-2 with the size you want",
            param="size",
        )
    return seed


async def parse_video_create(
    fields: dict[str, Any], guard: UrlGuard, engine: JobEngine
) -> GenRequest:
    """POST /v1/videos: text-to-video, image-to-video, remix by share id, storyboard, characters."""
    prompt = _prompt(fields)
    model = video_model(fields.get("model"), fields.get("seconds"), fields.get("size"))
    style = normalize_style(fields.get("style_id"))
    prompt, prompt_style = extract_style(prompt)
    mentions = await character_mentions(engine, fields.get("characters"))
    missing = [m for m in mentions if m not in prompt.split()]
    if missing:
        prompt = " ".join([*missing, prompt])
    req = GenRequest(model=model, mode="video", prompt=prompt, style_id=style or prompt_style)
    image = fields.get("input_reference", fields.get("image"))

    remix = fields.get("remix_target_id")
    remix_id = validate_remix_id(remix) if _present(remix) else find_remix_id(prompt)
    if remix_id:
        if _present(image):
            raise BadRequestError("A remix takes no input_reference", param="input_reference")
        req.mode, req.remix_target_id = "remix", remix_id
        req.prompt = strip_remix_id(prompt)
        if not req.prompt:
            raise BadRequestError("A remix needs a prompt describing the change", param="prompt")
        return req
    if _present(image):
        req.image = await _media(image, guard, kind="image", param="input_reference")
    if is_storyboard(prompt):
        try:
            req.storyboard = parse_storyboard(prompt)
        except BadRequestError as exc:
            exc.param = "prompt"  # the chat parser names its own field
            raise
        req.mode = "storyboard"
    elif not prompt:
        raise BadRequestError("'prompt' is required: describe what to generate", param="prompt")
    return req


async def character_mentions(engine: JobEngine, value: Any) -> list[str]:
    """`characters`: ids from POST /v1/videos/characters or Sora usernames → "@username" mentions."""
    if not _present(value):
        return []
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value) if v]
    if not isinstance(value, list) or len(value) > 5:
        raise BadRequestError(
            "'characters' must be a list of at most 5 character ids", param="characters"
        )
    out: list[str] = []
    for item in value:
        ref = item.get("id") if isinstance(item, dict) else item
        if not isinstance(ref, str):
            raise BadRequestError("'characters' items must be ids or usernames", param="characters")
        if _CHAR_ID.fullmatch(ref):
            row = await engine.store.jobs.get_of_kind(ref, "character")
            if row is None:
                raise BadRequestError(f"No character with id {ref!r}", param="characters")
            if row.status != "completed":
                raise ConflictError(
                    f"Character {ref} is not ready (status {row.status})",
                    code="character_not_ready",
                )
            username = orjson.loads(row.result or "{}").get("username")
            if not username:
                raise ConflictError(
                    f"Character {ref} finished without a username", code="character_not_ready"
                )
            out.append(f"@{username}")
            continue
        m = _USERNAME.fullmatch(ref.lower())
        if m is None:
            raise BadRequestError(
                f"{ref!r} is neither a character id (char_...) nor a Sora username",
                param="characters",
            )
        out.append("@" + m.group(1))
    return out


def row_spec(row: JobRow) -> dict[str, Any]:
    """The stored request of a job, with its shape filled in for rows that predate it."""
    spec: dict[str, Any] = orjson.loads(row.request or "{}")
    seed = MODELS.get(str(row.model))
    if seed is not None:
        for key in ("orientation", "seconds", "width", "height"):
            if not spec.get(key):
                spec[key] = getattr(seed, key) or None
    return spec


def remix_request(source: JobRow, fields: dict[str, Any]) -> GenRequest:
    """A remix of a finished job keeps its model, orientation and length; the caller sets
    remix_target_id (share_id()) once the body is known to be valid."""
    prompt, style = extract_style(_prompt(fields))
    if not prompt:
        raise BadRequestError("A remix needs a prompt describing the change", param="prompt")
    spec = row_spec(source)
    orientation = spec.get("orientation") or DEFAULT_ORIENTATION
    seconds = int(spec.get("seconds") or DEFAULT_SECONDS)
    model = MODELS.get(str(source.model)) or Model(
        str(source.model),
        "video",
        f"Video {seconds}s {orientation}",
        orientation=orientation,
        seconds=seconds,
    )
    return GenRequest(
        model=model,
        mode="remix",
        prompt=prompt,
        style_id=normalize_style(fields.get("style_id")) or style,
    )


async def share_id(engine: JobEngine, row: JobRow) -> str:
    """The s_ post id the backend remixes (it remixes posts, not drafts): the finished draft is
    published once by the token that made it, which makes it a public Sora post. The post stays up
    while the video exists (DELETE /v1/videos/{id} takes it down) and its id is kept in the job's
    state for later remixes. Two remixes racing on a never-published video may publish it twice;
    both posts work."""
    state: dict[str, Any] = orjson.loads(row.state or "{}")
    if state.get("share_post_id"):
        return str(state["share_post_id"])
    generation_id, token_id = state.get("generation_id"), row.token_id
    if not generation_id or token_id is None:
        raise ConflictError(
            f"Video {row.id} has no Sora draft id recorded, so it cannot be published for a "
            "remix (it was made before remixing was supported); remix by share id instead",
            code="remix_unavailable",
        )
    try:
        token = engine.pool.state(int(token_id))
    except NotFoundError:
        raise ConflictError(
            f"The token that made {row.id} was removed; only its owner can publish the draft",
            code="remix_unavailable",
        ) from None
    try:
        post_id = await engine.client.publish(
            str(token.row["access_token"]), str(generation_id), token.row.get("proxy") or None
        )
    except UpstreamFailure as failure:
        await engine.pool.report_failure(int(token_id), failure)
        raise as_api_error(
            failure,
            message=f"Publishing {row.id} on Sora (needed to remix it) failed: "
            f"{failure.describe()}",
        ) from None
    # The job is finished, so no flow writes its state any more: read-modify-write is safe.
    state["share_post_id"] = post_id
    await engine.store.jobs.update(
        row.id, {"state": orjson.dumps(state).decode(), "updated_at": time.time()}
    )
    engine.job_changed(row.id)
    return post_id


async def unpublish(engine: JobEngine, row: JobRow) -> None:
    """Take down the post share_id() made for a video that is being deleted (best effort)."""
    state: dict[str, Any] = orjson.loads(row.state or "{}")
    post_id, token_id = state.get("share_post_id"), row.token_id
    if not post_id or token_id is None:
        return
    try:
        token = engine.pool.state(int(token_id))
        await engine.client.delete_post(
            str(token.row["access_token"]), str(post_id), token.row.get("proxy") or None
        )
    except (UpstreamFailure, NotFoundError) as exc:
        reason = exc.describe() if isinstance(exc, UpstreamFailure) else exc.message
        log.warning("could not delete post %s of job %s: %s", post_id, row.id, reason)


# -- characters ------------------------------------------------------------------------------------


async def parse_character_create(fields: dict[str, Any], guard: UrlGuard) -> GenRequest:
    """POST /v1/videos/characters: `name` and a `video` (file, or video_url / data: URL in JSON)."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequestError("'name' is required: the character's display name", param="name")
    if len(name) > 80:
        raise BadRequestError("'name' is longer than 80 characters", param="name")
    video = fields.get("video", fields.get("video_url"))
    if not _present(video):
        raise BadRequestError("'video' is required: a short clip of the character", param="video")
    media = await _media(video, guard, kind="video", param="video")
    opts = _character_options(
        {
            "display_name": name.strip(),
            "username": fields.get("username"),
            "timestamps": fields.get("timestamps"),
            "instruction_set": fields.get("instruction_set"),
            "safety_instruction_set": fields.get("safety_instruction_set"),
        }
    )
    # Character creation renders nothing; the model only records what made the job.
    model = Model(
        DEFAULT_VIDEO_MODEL,
        "video",
        "Character",
        orientation=DEFAULT_ORIENTATION,
        seconds=DEFAULT_SECONDS,
    )
    return GenRequest(model=model, mode="character", video=media, character=opts)


# -- images ----------------------------------------------------------------------------------------


def image_model(model_id: Any, size: Any) -> Model:
    """A seed image model, or an OpenAI image name rendered in the shape `size` maps to."""
    default = model_id is None or model_id == ""
    seed = MODELS.get(model_id) if isinstance(model_id, str) else None
    if seed is not None and seed.kind != "image":
        raise BadRequestError(f"{model_id!r} is a video model; use POST /v1/videos", param="model")
    if seed is None and model_id not in IMAGE_ALIASES and not default:
        names = [*IMAGE_SHAPES.values(), *IMAGE_ALIASES]
        raise BadRequestError(
            f"Unknown model {model_id!r}; available: {', '.join(names)}",
            param="model",
            code="model_not_found",
        )
    shape = None
    if size not in (None, "", "auto"):
        shape = IMAGE_SIZES.get(size.strip().lower()) if isinstance(size, str) else None
        if shape is None:
            raise BadRequestError(
                f"Unsupported size {size!r}; use one of: {', '.join(IMAGE_SIZES)} or auto "
                "(square → 360x360, landscape → 540x360, portrait → 360x540)",
                param="size",
                code="unsupported_value",
            )
    if seed is not None:
        if shape is not None and IMAGE_SHAPES[shape] != seed.id:
            raise BadRequestError(
                f"{model_id} makes {seed.width}x{seed.height} images; omit 'size' or use "
                f"{IMAGE_SHAPES[shape]}",
                param="size",
            )
        return seed
    base = MODELS[IMAGE_SHAPES[shape or "square"]]
    if default:
        return base  # no model named: the seed model of the size's shape
    return Model(str(model_id), "image", base.description, width=base.width, height=base.height)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    req: GenRequest
    response_format: str  # url | b64_json


async def parse_image_request(
    fields: dict[str, Any], guard: UrlGuard, *, edit: bool
) -> ImageRequest:
    """POST /v1/images/generations and /v1/images/edits (one reference image, no mask)."""
    prompt = _prompt(fields)
    model = image_model(fields.get("model"), fields.get("size"))
    n = _int_field(fields, "n", 1, 1, MAX_IMAGES)
    fmt = _choice(fields, "response_format", ("url", "b64_json"))
    if fields.get("stream") in (True, "true", "True"):
        raise BadRequestError(
            "Streaming image generation is not supported; omit 'stream'", param="stream"
        )
    req = GenRequest(model=model, mode="image", prompt=prompt, n=n)
    if edit:
        if _present(fields.get("mask")):
            raise BadRequestError(
                "Masks are not supported by the Sora backend; send only 'image'", param="mask"
            )
        image = fields.get("image", fields.get("images"))
        if not _present(image):
            raise BadRequestError("'image' is required: the image to edit", param="image")
        req.image = await _media(image, guard, kind="image", param="image")
    return ImageRequest(req, fmt)
