"""Progress events as one human line each, for clients that type reasoning_content as a string."""

from __future__ import annotations

from typing import Any

from .jobs import Event

# The values of [generation] progress_format and of a request's `progress_format` field.
PROGRESS_FORMATS = ("object", "text")


def duration(seconds: float) -> str:
    """A short human duration: `8 s`, `2 min 5 s`, `1 h 3 min`."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"


def _percent(value: float) -> str:
    # One decimal at most, like the object form's rounded `progress`.
    return f"{round(value, 1):g}%"


class ProgressText:
    """Renders one stream's events as lines; remembers when each stage began, for "for how long"."""

    def __init__(self) -> None:
        self._since: dict[str, int] = {}

    def line(self, event: Event) -> str:
        """One line ending in a newline: clients concatenate the deltas, so lines must not run on."""
        began = min(self._since.get(event.stage, event.timestamp), event.timestamp)
        self._since[event.stage] = began
        text = event.message.strip() or f"{event.stage.replace('_', ' ').capitalize()}"
        if event.status == "error":
            text = f"Error: {text}"
        elif event.progress is not None:
            # Sora's poll lines already carry the number; others get the event's own value.
            if event.status == "processing" and "%" not in text:
                text = f"{text} ({_percent(event.progress)} completed)"
        elif event.status == "processing":
            # No percentage from the upstream: never invent one; say where the job is, and since when.
            stage = event.stage.replace("_", " ")
            text = f"{text} ({stage} stage, {duration(event.timestamp - began)} so far)"
        return text + "\n"


def render(event: Event, fmt: str, text: ProgressText) -> dict[str, Any] | str:
    """An event as reasoning_content in the given progress format."""
    return text.line(event) if fmt == "text" else event.as_dict()
