"""The Seedance model table, its chat-friendly aliases, and the size -> ratio/resolution mapping.

The capabilities below are taken from public documentation of Seedance 2.x (Ark / ModelArk docs
and the resellers that mirror them, late 2026), not from the live service: durations are whole
seconds 4..15, ratios the six fixed ones, images in the roles first_frame, last_frame and
reference_image. An account's `models` may name ids missing here; they get PERMISSIVE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..base import ModelSpec

NAME = "seedance"
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
ROLES = ("first_frame", "last_frame", "reference_image")
_ALL_RES = ("480p", "720p", "1080p")
_FAST_RES = ("480p", "720p")

# The output size Ark documents for each (resolution, ratio): the "WxH" a client may send.
PIXELS: dict[tuple[str, str], tuple[int, int]] = {
    ("480p", "16:9"): (864, 480),
    ("480p", "9:16"): (480, 864),
    ("480p", "1:1"): (640, 640),
    ("480p", "4:3"): (736, 544),
    ("480p", "3:4"): (544, 736),
    ("480p", "21:9"): (960, 416),
    ("720p", "16:9"): (1248, 704),
    ("720p", "9:16"): (704, 1248),
    ("720p", "1:1"): (960, 960),
    ("720p", "4:3"): (1120, 832),
    ("720p", "3:4"): (832, 1120),
    ("720p", "21:9"): (1504, 640),
    ("1080p", "16:9"): (1920, 1088),
    ("1080p", "9:16"): (1088, 1920),
    ("1080p", "1:1"): (1440, 1440),
    ("1080p", "4:3"): (1664, 1248),
    ("1080p", "3:4"): (1248, 1664),
    ("1080p", "21:9"): (2176, 928),
}
# The sizes OpenAI-shaped clients send (Sora's), accepted as the nearest ratio and resolution.
_FAMILIAR = ("1280x720", "720x1280", "1920x1080", "1080x1920")
# A WxH within this relative distance of a ratio counts as that ratio (1920x1088 is 0.7 % off).
_RATIO_TOLERANCE = 0.04
# Reference pixel counts of each resolution; a size takes the nearest (log scale).
_AREAS = {"480p": 854 * 480, "720p": 1280 * 720, "1080p": 1920 * 1080}


@dataclass(frozen=True, slots=True)
class Caps:
    """What one upstream model accepts."""

    durations: tuple[int, ...]
    ratios: tuple[str, ...]
    resolutions: tuple[str, ...]
    roles: tuple[str, ...]
    default_seconds: int = 5
    default_resolution: str = "720p"
    label: str = ""


_SECONDS = tuple(range(4, 16))
TABLE: dict[str, Caps] = {
    "doubao-seedance-2-0-260128": Caps(_SECONDS, RATIOS, _ALL_RES, ROLES, label="Seedance 2.0"),
    "doubao-seedance-2-0-fast-260128": Caps(
        _SECONDS, RATIOS, _FAST_RES, ROLES, label="Seedance 2.0 Fast"
    ),
    "doubao-seedance-2-5-260628": Caps(_SECONDS, RATIOS, _ALL_RES, ROLES, label="Seedance 2.5"),
    "doubao-seedance-2-0-mini-260615": Caps(
        _SECONDS, RATIOS, _FAST_RES, ROLES, label="Seedance 2.0 Mini"
    ),
    "dreamina-seedance-2-0-260128": Caps(
        _SECONDS, RATIOS, _ALL_RES, ROLES, label="Seedance 2.0 (BytePlus ModelArk)"
    ),
}
# An id the admin listed that the table does not know: allow what any Seedance 2.x allows and
# let the upstream refuse the rest (its InvalidParameter message reaches the client).
PERMISSIVE = Caps(tuple(range(2, 16)), RATIOS, _ALL_RES, ROLES, label="Seedance (unlisted id)")

# Chat-friendly aliases: family -> upstream id; each gets landscape/portrait x 5/10/15 s.
FAMILIES = {
    "seedance-2.0": "doubao-seedance-2-0-260128",
    "seedance-2.0-fast": "doubao-seedance-2-0-fast-260128",
    "seedance-2.5": "doubao-seedance-2-5-260628",
    "seedance-2.0-mini": "doubao-seedance-2-0-mini-260615",
    "dreamina-seedance-2.0": "dreamina-seedance-2-0-260128",
}
_SHAPES = {"landscape": "1280x720", "portrait": "720x1280"}
_ALIAS_SECONDS = (5, 10, 15)


def caps(upstream: str) -> Caps:
    """The capabilities of an upstream id (permissive when the table does not know it)."""
    return TABLE.get(upstream, PERMISSIVE)


def sizes_of(c: Caps) -> tuple[str, ...]:
    """Every "WxH" a model accepts: Ark's documented sizes, then the familiar Sora ones."""
    out = [f"{w}x{h}" for (res, ratio), (w, h) in PIXELS.items() if res in c.resolutions]
    for size in _FAMILIAR:
        try:
            ratio_and_resolution(size, c)
        except ValueError:
            continue
        out.append(size)
    return tuple(out)


def ratio_and_resolution(size: str, c: Caps) -> tuple[str, str]:
    """Ark's (ratio, resolution) for a "WxH"; ValueError naming what is allowed."""
    w_s, _, h_s = size.lower().partition("x")
    if not (w_s.isdigit() and h_s.isdigit()) or int(w_s) == 0 or int(h_s) == 0:
        raise ValueError(f"size must be WIDTHxHEIGHT, got {size!r}")
    w, h = int(w_s), int(h_s)
    ratio = min(c.ratios, key=lambda r: abs(math.log(w / h / _ratio_value(r))))
    if abs(w / h / _ratio_value(ratio) - 1) > _RATIO_TOLERANCE:
        raise ValueError(
            f"size {size} is not one of this model's aspect ratios ({', '.join(c.ratios)})"
        )
    res = min(c.resolutions, key=lambda r: abs(math.log(w * h / _AREAS[r])))
    if abs(math.log(w * h / _AREAS[res])) > math.log(1.6):
        raise ValueError(
            f"size {size} is not near any of this model's resolutions ({', '.join(c.resolutions)})"
        )
    return ratio, res


def _ratio_value(ratio: str) -> float:
    a, _, b = ratio.partition(":")
    return int(a) / int(b)


def _spec(
    public: str,
    upstream: str,
    c: Caps,
    *,
    seconds: tuple[int, ...] | None = None,
    size: str | None = None,
    description: str = "",
) -> ModelSpec:
    return ModelSpec(
        id=public,
        provider=NAME,
        upstream=upstream,
        kind="video",
        seconds=seconds or c.durations,
        default_seconds=seconds[0] if seconds else c.default_seconds,
        sizes=(size,) if size else sizes_of(c),
        default_size=size or "1280x720",
        image_input=bool(c.roles),
        image_roles=c.roles,
        description=description or c.label,
    )


def specs(account_models: tuple[str, ...]) -> list[ModelSpec]:
    """Public ids (= upstream ids) for what an account serves, plus the aliases of those."""
    out: list[ModelSpec] = []
    for upstream in account_models:
        out.append(_spec(upstream, upstream, caps(upstream)))
    served = set(account_models)
    for family, upstream in FAMILIES.items():
        if upstream not in served:
            continue
        c = caps(upstream)
        for shape, size in _SHAPES.items():
            for seconds in _ALIAS_SECONDS:
                if seconds not in c.durations:
                    continue
                label = f"{c.label}, {shape} 720p, {seconds} s"
                alias = f"{family}-{shape}-{seconds}s"
                out.append(
                    _spec(alias, upstream, c, seconds=(seconds,), size=size, description=label)
                )
    return out
