"""API keys the admin creates: their validation, the in-memory ring that authenticates them, and
their limits (models, concurrency, requests per minute, daily video seconds and images)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson

from .errors import BadRequestError, NotFoundError, PermissionError_, RateLimitError
from .mask import mask
from .store import ApiKeyRow, Store

LIMITS = ("concurrency", "rpm", "video_seconds_per_day", "images_per_day")
PROGRESS_FORMATS = ("object", "text")  # as progress_text.PROGRESS_FORMATS (which imports jobs)
CONTENT_FORMATS = ("json", "markdown")
_FIELDS = {
    "name",
    "models",
    "expires_at",
    "limits",
    "webhook_urls",
    "progress_format",
    "content_format",
}
# A full concurrency slot frees when some job of the key ends, which nothing can predict.
_CONCURRENCY_RETRY_AFTER = 5


def hash_key(key: str) -> str:
    """The stored form of a key. Plain SHA-256, not scrypt: keys are 256 random bits, so there is
    nothing to guess offline, and every /v1 request hashes the bearer (a slow hash would cost
    each request what it costs a login)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk-s2a-" + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def key_object(row: ApiKeyRow) -> dict[str, Any]:
    """A key as the admin API shows it: the key and the webhook secret never appear here."""
    return {
        "id": row.id,
        "object": "api_key",
        "name": row.name,
        "key_hint": row.key_hint,
        "models": list(row.models) if row.models is not None else None,
        "expires_at": int(row.expires_at) if row.expires_at is not None else None,
        "enabled": row.enabled,
        "limits": {name: row.limits.get(name) for name in LIMITS},
        "webhook_urls": list(row.webhook_urls),
        "progress_format": row.progress_format,
        "content_format": row.content_format,
        "created_at": int(row.created_at),
    }


# -- validation ------------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise BadRequestError(
            "'name' must be a non-empty string of at most 100 characters", param="name"
        )
    return value.strip()


def _models(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and 0 < len(value) <= 100
    ok = ok and all(isinstance(m, str) and 0 < len(m.strip()) <= 200 for m in value)
    if not ok:
        raise BadRequestError(
            "'models' must be a non-empty list of model ids (at most 100), or null for all models",
            param="models",
        )
    return tuple(dict.fromkeys(m.strip() for m in value))


def _expires_at(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 2**40:
        raise BadRequestError(
            "'expires_at' must be a Unix time in seconds, or null for never", param="expires_at"
        )
    return float(value)


def _limits(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(
            f"'limits' must be an object with any of: {', '.join(LIMITS)}", param="limits"
        )
    out: dict[str, int] = {}
    for name, limit in value.items():
        if name not in LIMITS:
            raise BadRequestError(
                f"Unknown limit {name!r}; use any of: {', '.join(LIMITS)}", param=f"limits.{name}"
            )
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10**9:
            raise BadRequestError(
                f"'limits.{name}' must be a whole number from 1, or null for no limit",
                param=f"limits.{name}",
            )
        out[name] = limit
    return out


def _webhook_urls(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 10:
        raise BadRequestError(
            "'webhook_urls' must be a list of at most 10 URLs", param="webhook_urls"
        )
    for url in value:
        try:
            parts = urlsplit(url) if isinstance(url, str) and len(url) <= 2000 else None
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequestError(
                f"'webhook_urls' holds {str(url)[:80]!r}, not an http(s) URL", param="webhook_urls"
            )
    return tuple(value)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is None or value in allowed:
        return value  # type: ignore[no-any-return]
    raise BadRequestError(
        f"'{name}' must be one of {', '.join(allowed)} (or null for the server's default)",
        param=name,
    )


def parse_key_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The stored values of a create (every field) or an update (the fields given); a 400 names
    the first wrong one."""
    allowed = _FIELDS if creating else _FIELDS | {"enabled"}
    for name in body:
        if name not in allowed:
            raise BadRequestError(
                f"Unknown field {name!r}; a key takes: {', '.join(sorted(allowed))}", param=name
            )
    if creating and "name" not in body:
        raise BadRequestError("'name' is required", param="name")
    if not creating and not body:
        raise BadRequestError(f"Nothing to change; send any of: {', '.join(sorted(allowed))}")
    parsers: dict[str, Callable[[Any], Any]] = {
        "name": _name,
        "models": _models,
        "expires_at": _expires_at,
        "limits": _limits,
        "webhook_urls": _webhook_urls,
        "progress_format": lambda v: _choice("progress_format", v, PROGRESS_FORMATS),
        "content_format": lambda v: _choice("content_format", v, CONTENT_FORMATS),
    }
    out = {
        name: parse(body.get(name)) for name, parse in parsers.items() if creating or name in body
    }
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise BadRequestError("'enabled' must be true or false", param="enabled")
        out["enabled"] = body["enabled"]
    return out


def _utc_midnight_after(now: float) -> float:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _limit_hit(message: str, retry_after: float) -> RateLimitError:
    err = RateLimitError(message, code="key_limit_exceeded")
    err.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return err


# -- the ring --------------------------------------------------------------------------------------


class KeyRing:
    """Every key by its hash (one dict lookup per request, no database read), kept in step with
    the api_keys table by the admin routes; and the per-key limit bookkeeping."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._by_hash: dict[str, ApiKeyRow] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # Creations in the last minute per key: in memory (a restart forgets at most a minute).
        self._recent: dict[int, deque[float]] = {}
        self._listings: dict[tuple[tuple[str, ...], bytes], bytes] = {}

    async def load(self) -> None:
        self._by_hash = {row.key_hash: row for row in await self._store.api_keys.all()}

    def lookup(self, given: str) -> ApiKeyRow | None:
        """The key whose hash matches, enabled or not (the caller says why it refuses one)."""
        return self._by_hash.get(hash_key(given))

    def rows(self) -> Iterable[ApiKeyRow]:
        return sorted(self._by_hash.values(), key=lambda r: r.id)

    async def create(self, fields: dict[str, Any]) -> tuple[ApiKeyRow, str]:
        """Store a new key; returns its row and the key itself (shown once, never stored)."""
        key = new_key()
        now = time.time()
        row = await self._store.api_keys.add(
            {
                **fields,
                "key_hash": hash_key(key),
                "key_hint": mask(key),
                "webhook_secret": new_webhook_secret(),
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
        )
        self._by_hash[row.key_hash] = row
        return row, key

    async def get(self, key_id: int) -> ApiKeyRow:
        row = await self._store.api_keys.get(key_id)
        if row is None:
            raise NotFoundError(f"No API key with id {key_id}", param="id")
        return row

    async def update(self, key_id: int, fields: dict[str, Any]) -> ApiKeyRow:
        await self.get(key_id)
        row = await self._store.api_keys.update(key_id, {**fields, "updated_at": time.time()})
        if row is None:
            raise NotFoundError(f"No API key with id {key_id}", param="id")
        self._by_hash[row.key_hash] = row
        return row

    async def delete(self, key_id: int) -> None:
        row = await self.get(key_id)
        await self._store.api_keys.delete(key_id)
        self._by_hash.pop(row.key_hash, None)
        self._recent.pop(key_id, None)

    def listing(self, key: ApiKeyRow, body: bytes) -> bytes:
        """The /v1/models answer `body` narrowed to the key's models (kept per body and list)."""
        if key.models is None:
            return body
        cache_key = (key.models, body)
        found = self._listings.get(cache_key)
        if found is None:
            listing = orjson.loads(body)
            listing["data"] = [m for m in listing["data"] if m.get("id") in key.models]
            if len(self._listings) > 256:  # bodies change when accounts do: keep a few
                self._listings.clear()
            found = self._listings[cache_key] = orjson.dumps(listing)
        return found

    # -- limits --------------------------------------------------------------------------------

    @staticmethod
    def check_model(key: ApiKeyRow, model_id: str) -> None:
        """A 403 when the key is restricted to other models."""
        if key.models is not None and model_id not in key.models:
            raise PermissionError_(
                f"This API key may not use model {model_id!r}; its models: {', '.join(key.models)}",
                param="model",
                code="model_not_allowed",
            )

    @contextlib.asynccontextmanager
    async def admit(
        self, key: ApiKeyRow, model_id: str, video_seconds: float, images: int
    ) -> AsyncIterator[None]:
        """Held around a job's creation: refuses it (a 429 naming the limit, nothing created)
        when the key is at a limit. One creation per key at a time, so two concurrent requests
        cannot both take the last slot."""
        self.check_model(key, model_id)
        lock = self._locks.setdefault(key.id, asyncio.Lock())
        async with lock:
            now = time.time()
            await self._check(key, now, video_seconds, images)
            yield
            self._recent.setdefault(key.id, deque()).append(time.monotonic())

    async def _check(self, key: ApiKeyRow, now: float, seconds: float, images: int) -> None:
        limits = key.limits
        rpm = limits.get("rpm")
        if rpm is not None:
            window = self._recent.setdefault(key.id, deque())
            mono = time.monotonic()
            while window and mono - window[0] >= 60:
                window.popleft()
            if len(window) >= rpm:
                wait = window[0] + 60 - mono
                raise _limit_hit(
                    f"Limit 'rpm' reached: this key may create {rpm} jobs a minute; "
                    f"it resets in {max(1, math.ceil(wait))} s",
                    wait,
                )
        daily = {n: limits[n] for n in ("video_seconds_per_day", "images_per_day") if n in limits}
        concurrency = limits.get("concurrency")
        if concurrency is None and not daily:
            return
        running = await self._store.usage.running(key.id)
        if concurrency is not None and running.jobs >= concurrency:
            raise _limit_hit(
                f"Limit 'concurrency' reached: this key has {running.jobs} jobs running, its "
                f"limit is {concurrency}; retry when one ends",
                _CONCURRENCY_RETRY_AFTER,
            )
        if not daily:
            return
        midnight = _utc_midnight_after(now)
        spent = await self._store.usage.completed_since(key.id, midnight - 86400)
        resets = dt.datetime.fromtimestamp(midnight, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cap = daily.get("video_seconds_per_day")
        if (
            cap is not None
            and seconds
            and spent.video_seconds + running.video_seconds + seconds > cap
        ):
            raise _limit_hit(
                f"Limit 'video_seconds_per_day' reached: {spent.video_seconds:g} of {cap} s used "
                f"today and {running.video_seconds:g} s running; this {seconds:g} s video would "
                f"exceed it. It resets at {resets} (00:00 UTC)",
                midnight - now,
            )
        cap = daily.get("images_per_day")
        if cap is not None and images and spent.images + running.images + images > cap:
            raise _limit_hit(
                f"Limit 'images_per_day' reached: {spent.images} of {cap} images used today and "
                f"{running.images} running; {images} more would exceed it. It resets at {resets} "
                "(00:00 UTC)",
                midnight - now,
            )
