"""Live settings: config.toml, then values saved from the admin panel, then SORA2API_* variables.

Precedence (documented in the README and shown in the panel): an environment variable wins over
everything and locks the field; otherwise a value saved in the panel (stored in SQLite) wins over
config.toml; otherwise config.toml applies. Readers take `settings.current`, an immutable Config
snapshot that is swapped whole on every change, so a request never sees half an update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .config import (
    Config,
    ConfigError,
    check_relations,
    choices,
    coerce,
    field_types,
)
from .config_rules import RANGES
from .errors import BadRequestError
from .mask import mask, mask_proxy
from .store import Store

log = logging.getLogger(__name__)

# Fields the panel may change at run time. Credentials have their own routes; listen address,
# paths and upstream hosts need a restart and stay in config.toml.
EDITABLE: dict[str, tuple[str, ...]] = {
    "server": ("public_url",),
    "storage": ("media_ttl",),
    "upstream": (
        "proxy",
        "poll_interval",
        "image_timeout",
        "video_timeout",
        "user_agent",
        "third_party_url",
    ),
    "generation": (
        "content_format",
        "progress_format",
        "queue_timeout",
        "watermark_free",
        "watermark_parse_method",
        "watermark_custom_url",
        "watermark_custom_token",
        "watermark_fallback",
    ),
    "pool": (
        "image_concurrency",
        "video_concurrency",
        "error_ban_threshold",
        "refresh_enabled",
        "refresh_window",
        "refresh_interval",
        "cooldown_base",
        "cooldown_max",
    ),
    "metrics": ("token",),
}
# Secret-valued settings are shown masked.
SECRET_FIELDS = {("generation", "watermark_custom_token"), ("metrics", "token")}
# URL-valued settings: a password in them (user:password@host) is masked.
_URL_FIELDS = {
    ("server", "public_url"),
    ("upstream", "proxy"),
    ("upstream", "third_party_url"),
    ("generation", "watermark_custom_url"),
}

_PREFIX = "cfg."


def shown_value(section: str, key: str, value: Any) -> Any:
    """A setting's value as any answer or log may show it: secrets through the one mask."""
    if (section, key) in SECRET_FIELDS:
        return mask(value)
    if (section, key) in _URL_FIELDS:
        return mask_proxy(value)
    return value


class Settings:
    """The effective configuration plus the panel's stored overrides."""

    def __init__(self, base: Config, store: Store) -> None:
        self._base = base
        self._store = store
        self._saved: dict[tuple[str, str], Any] = {}
        self.current = base
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after each change of `current`; returns the call that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def load(self) -> None:
        """Read stored overrides; a stored value the program no longer accepts is skipped, not fatal."""
        for row in await self._store.settings.with_prefix(_PREFIX):
            section, _, key = row.key[len(_PREFIX) :].partition(".")
            if key not in EDITABLE.get(section, ()):
                continue
            try:
                self._saved[(section, key)] = coerce(section, key, orjson.loads(row.value), "panel")
            except (ConfigError, orjson.JSONDecodeError) as exc:
                log.warning("ignoring stored setting %s.%s: %s", section, key, exc)
        self._rebuild()

    def _rebuild(self) -> None:
        changes: dict[str, dict[str, Any]] = {}
        for (section, key), value in self._saved.items():
            if (section, key) in self._base.env_overrides:
                continue
            changes.setdefault(section, {})[key] = value
        self.current = self._base.replace(**changes)
        for listener in list(self._listeners):
            listener()

    async def update(self, values: Mapping[str, Any]) -> list[str]:
        """Validate and save {"section.key": value}; all-or-nothing. Returns the keys changed."""
        parsed: dict[tuple[str, str], Any] = {}
        for dotted, value in values.items():
            section, _, key = dotted.partition(".")
            if key not in EDITABLE.get(section, ()):
                raise BadRequestError(
                    f"Setting {dotted!r} cannot be changed from the panel", param=dotted
                )
            if (section, key) in self._base.env_overrides:
                raise BadRequestError(
                    f"Setting {dotted!r} is set by the environment variable "
                    f"SORA2API_{section.upper()}_{key.upper()} and cannot be changed here",
                    param=dotted,
                )
            try:
                parsed[(section, key)] = coerce(section, key, value, "setting")
            except ConfigError as exc:
                raise BadRequestError(str(exc), param=dotted) from None
        changes: dict[str, dict[str, Any]] = {}
        for (section, key), value in parsed.items():
            changes.setdefault(section, {})[key] = value
        problem = check_relations(self.current.replace(**changes))
        if problem is not None:
            section, key, why = problem
            raise BadRequestError(f"{section}.{key} {why}", param=f"{section}.{key}")
        for (section, key), value in parsed.items():
            await self._store.settings.put(
                f"{_PREFIX}{section}.{key}", orjson.dumps(value).decode()
            )
            self._saved[(section, key)] = value
        self._rebuild()
        return [f"{s}.{k}" for s, k in parsed]

    def describe(self) -> list[dict[str, Any]]:
        """Every editable field with its effective value and where that value comes from."""
        out: list[dict[str, Any]] = []
        for section, keys in EDITABLE.items():
            types = field_types(section)
            for key in keys:
                value = getattr(getattr(self.current, section), key)
                if (section, key) in self._base.env_overrides:
                    source = "env"
                elif (section, key) in self._saved:
                    source = "panel"
                else:
                    source = "config"
                shown = shown_value(section, key, value)
                out.append(
                    {
                        "key": f"{section}.{key}",
                        # The effective value: the environment's, the panel's or the file's.
                        "value": shown,
                        "type": {bool: "bool", int: "int", float: "float", str: "str"}[types[key]],
                        "source": source,
                        "locked": source == "env",
                        # config.toml's value goes through the same mask as the effective one.
                        "file_value": shown_value(
                            section, key, getattr(getattr(self._base, section), key)
                        ),
                        # Edited like a password: the panel never receives the value to send back.
                        "secret": (section, key) in SECRET_FIELDS or shown != value,
                        "choices": choices(section, key),
                        # [min, max] of a number (the panel's input bounds), else None.
                        "range": list(RANGES[(section, key)]) if (section, key) in RANGES else None,
                    }
                )
        return out

    async def get_value(self, key: str) -> Any:
        """A raw stored value outside the config model (admin credentials, API key)."""
        raw = await self._store.settings.get(key)
        return orjson.loads(raw) if raw is not None else None

    async def set_value(self, key: str, value: Any) -> None:
        await self._store.settings.put(key, orjson.dumps(value).decode())
