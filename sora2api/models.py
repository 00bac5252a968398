"""The model table: what each public model id means to the backend."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadRequestError


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    kind: str  # "image" | "video"
    description: str
    width: int = 0
    height: int = 0
    orientation: str = ""
    seconds: int = 0

    @property
    def n_frames(self) -> int:
        # The backend counts frames at 30 fps: 300 = 10 s, 450 = 15 s.
        return self.seconds * 30


def _image(id_: str, w: int, h: int, shape: str) -> Model:
    return Model(id_, "image", f"Image {w}x{h} ({shape})", width=w, height=h)


def _video(id_: str, orientation: str, seconds: int, shape: str) -> Model:
    return Model(
        id_, "video", f"Video {seconds}s {shape}", orientation=orientation, seconds=seconds
    )


# sora-video-10s/15s are "square" in the seed README, but the backend knows only landscape and
# portrait; like the reference implementation they render landscape.
MODELS: dict[str, Model] = {
    m.id: m
    for m in (
        _image("sora-image", 360, 360, "square"),
        _image("sora-image-landscape", 540, 360, "landscape"),
        _image("sora-image-portrait", 360, 540, "portrait"),
        _video("sora-video-10s", "landscape", 10, "landscape"),
        _video("sora-video-15s", "landscape", 15, "landscape"),
        _video("sora-video-landscape-10s", "landscape", 10, "landscape"),
        _video("sora-video-landscape-15s", "landscape", 15, "landscape"),
        _video("sora-video-portrait-10s", "portrait", 10, "portrait"),
        _video("sora-video-portrait-15s", "portrait", 15, "portrait"),
    )
}


def get_model(model_id: object) -> Model:
    """Look a model up exactly, or raise a 400 that lists what exists."""
    if not isinstance(model_id, str) or not model_id:
        raise BadRequestError("'model' is required and must be a string", param="model")
    try:
        return MODELS[model_id]
    except KeyError:
        raise BadRequestError(
            f"Unknown model {model_id!r}; available: {', '.join(MODELS)}",
            param="model",
            code="model_not_found",
        ) from None
