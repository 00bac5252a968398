"""Pure prompt parsing: remix ids, styles, storyboard shots. No I/O, unit-tested directly."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import BadRequestError

# Lowercase hex, exactly 32: the backend's post id form (anything else is not a remix id).
_REMIX_ID = re.compile(r"\bs_[a-f0-9]{32}\b")
_SHARE_URL = re.compile(r"https?://sora\.chatgpt\.com/p/(s_[a-f0-9]{32})\b/?")
_SHOT_MARK = re.compile(r"\[(\d+(?:\.\d+)?)s\]")
_STYLE_IN_PROMPT = re.compile(r"\{([A-Za-z]+)\}")

# The README's six styles plus those later Sora builds accepted.
STYLES = (
    "festive",
    "retro",
    "news",
    "selfie",
    "handheld",
    "anime",
    "kakalaka",
    "golden",
    "nostalgic",
    "comic",
    "vintage",
)
SHOT_SECONDS = (5, 10, 15, 20)


def find_remix_id(prompt: str) -> str | None:
    """The first share id (bare s_<32hex> or inside a share URL) in the prompt."""
    m = _SHARE_URL.search(prompt) or _REMIX_ID.search(prompt)
    if m is None:
        return None
    return m.group(1) if m.re is _SHARE_URL else m.group(0)


def strip_remix_id(prompt: str) -> str:
    """The prompt without share URLs and bare ids, whitespace collapsed."""
    cleaned = _REMIX_ID.sub(" ", _SHARE_URL.sub(" ", prompt))
    return " ".join(cleaned.split())


def validate_remix_id(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"s_[a-f0-9]{32}", value.strip()):
        raise BadRequestError(
            "remix_target_id must look like s_ followed by 32 lowercase hex characters",
            param="remix_target_id",
        )
    return value.strip()


def normalize_style(value: object, param: str = "style_id") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in STYLES:
        raise BadRequestError(
            f"Unknown style {value!r}; available: {', '.join(STYLES)}", param=param
        )
    return value.strip().lower()


def extract_style(prompt: str) -> tuple[str, str | None]:
    """A `{style}` word in the prompt (later Sora builds' syntax) → (prompt without it, style)."""
    for m in _STYLE_IN_PROMPT.finditer(prompt):
        word = m.group(1).lower()
        if word in STYLES:
            cleaned = (prompt[: m.start()] + prompt[m.end() :]).strip()
            return " ".join(cleaned.split()) if "\n" not in cleaned else cleaned, word
    return prompt, None


def is_storyboard(prompt: str) -> bool:
    return _SHOT_MARK.search(prompt) is not None


@dataclass(frozen=True, slots=True)
class Shot:
    seconds: float
    scene: str
    # The duration as the user wrote it ("5.0" or "10"): the backend prompt repeats it verbatim.
    label: str = ""


@dataclass(frozen=True, slots=True)
class Storyboard:
    shots: tuple[Shot, ...]
    instructions: str

    def backend_prompt(self) -> str:
        """The text the backend's storyboard endpoint expects (shots, then instructions)."""
        blocks = []
        for i, shot in enumerate(self.shots, 1):
            blocks.append(
                f"Shot {i}:\nduration: {shot.label or f'{shot.seconds:g}'}sec\nScene: {shot.scene}"
            )
        shots = "\n\n".join(blocks)
        if self.instructions:
            return f"current timeline:\n{shots}\n\ninstructions:\n{self.instructions}"
        return shots

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.shots)


def parse_storyboard(prompt: str) -> Storyboard:
    """`[5.0s]scene [10s]scene`, multi-line or space separated, optional leading instructions."""
    marks = list(_SHOT_MARK.finditer(prompt))
    if not marks:
        raise BadRequestError("Storyboard has no [Ns] shot markers", param="messages")
    instructions = prompt[: marks[0].start()].strip()
    shots: list[Shot] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(prompt)
        scene = " ".join(prompt[m.end() : end].split())
        seconds = float(m.group(1))
        if seconds not in SHOT_SECONDS:
            raise BadRequestError(
                f"Storyboard shot {i + 1} lasts {m.group(1)}s; each shot must last "
                f"{', '.join(f'{s}s' for s in SHOT_SECONDS)}",
                param="messages",
            )
        if not scene:
            continue
        shots.append(Shot(seconds, scene, m.group(1)))
    if not shots:
        raise BadRequestError(
            "Storyboard has no valid shot: each [Ns] marker needs a scene description after it",
            param="messages",
        )
    return Storyboard(tuple(shots), instructions)
