"""Webhooks: the per-request webhook_url, Standard Webhooks signing, and the outbox that delivers
every event of webhook_deliveries (written by the jobs_webhooks trigger when a job ends) with
retries and exponential backoff, surviving restarts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from .errors import ApiError, BadRequestError
from .settings import Settings
from .store import DeliveryRow, Store
from .store.webhooks import DELIVERED, FAILED, PENDING
from .urlguard import UrlGuard, check_url, display_url

log = logging.getLogger(__name__)

# Where the signing secret of jobs made with the bootstrap key ([auth] api_key) or the panel is
# kept: generated once, in the settings table, shown in the panel's Webhooks page.
BOOTSTRAP_SECRET = "webhooks.bootstrap_secret"
MAX_URL_LENGTH = 2000
# Seconds between two prunes of finished deliveries past [webhooks] keep_days.
_PRUNE_INTERVAL = 3600.0
# Seconds before the sender tries again after its own failure (the database, most likely).
_ERROR_PAUSE = 5.0


def new_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_webhook_url(fields: dict[str, Any]) -> str | None:
    """The create's own `webhook_url` (JSON or form field), or a 400 naming it."""
    value = fields.get("webhook_url")
    if value is None:
        return None
    try:
        parts = urlsplit(value) if isinstance(value, str) and len(value) <= MAX_URL_LENGTH else None
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise BadRequestError(
            f"'webhook_url' must be an http or https URL of at most {MAX_URL_LENGTH} characters",
            param="webhook_url",
        )
    return str(value)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: v1, and base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'
    keyed with the secret's bytes (base64 after the whsec_ prefix)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_body(row: DeliveryRow) -> bytes:
    """The event in OpenAI's shape. Built from the row alone, so every retry sends the same bytes;
    the event id is the same for every destination of one event."""
    digest = hashlib.sha256(f"{row.job_id}/{row.event}".encode()).hexdigest()[:32]
    return orjson.dumps(
        {
            "id": f"evt_{digest}",
            "object": "event",
            "type": row.event,
            "created_at": int(row.created_at),
            "data": {"id": row.job_id},
        }
    )


def delivery_object(row: DeliveryRow) -> dict[str, Any]:
    """A delivery as the admin API lists it: the URL without credentials or query, no secret."""
    return {
        "id": row.id,
        "object": "webhook.delivery",
        "event": row.event,
        "job_id": row.job_id,
        "key_id": row.key_id,
        "url": display_url(row.url),
        "status": row.status,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": int(row.created_at),
        "last_attempt_at": int(row.last_at) if row.last_at is not None else None,
        "next_retry_at": int(row.next_at) if row.status == PENDING and row.next_at else None,
        "delivered_at": int(row.delivered_at) if row.delivered_at is not None else None,
    }


def _printable(text: str, limit: int = 200) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class Outbox:
    """Sends pending deliveries: woken by a job that ended and by the next due retry, never by a
    polling timer. One attempt per delivery and per URL at a time (a receiver that is down is
    not hammered with its backlog), at most [webhooks] concurrency at once."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        session: aiohttp.ClientSession,
        guard: UrlGuard,
        key_secret: Callable[[int], Awaitable[str | None]],
    ) -> None:
        self._settings = settings
        self._store = store
        self._session = session
        self._guard = guard
        self._key_secret = key_secret
        self._wake = asyncio.Event()
        # Deliveries being sent: id → (task, URL). One per delivery and one per URL at a time.
        self._inflight: dict[str, tuple[asyncio.Task[None], str]] = {}
        self._bootstrap_secret = ""
        self._next_prune = 0.0
        # Set (and replaced) after every recorded attempt: what a test or a waiter can await.
        self._recorded = asyncio.Event()

    async def load(self) -> None:
        """Read (or create, once) the bootstrap key's signing secret."""
        stored = await self._settings.get_value(BOOTSTRAP_SECRET)
        if not isinstance(stored, str) or not stored.startswith("whsec_"):
            stored = new_secret()
            await self._settings.set_value(BOOTSTRAP_SECRET, stored)
        self._bootstrap_secret = stored

    @property
    def bootstrap_secret(self) -> str:
        return self._bootstrap_secret

    def wake(self) -> None:
        """A job ended (its deliveries are already in the outbox): look now."""
        self._wake.set()

    @property
    def recorded(self) -> asyncio.Event:
        """Set once the next attempt is recorded (take it before checking, then await it)."""
        return self._recorded

    async def backlog(self) -> int:
        """Deliveries still to make (for /metrics)."""
        return await self._store.webhooks.backlog()

    async def run(self) -> None:
        """The outbox loop (a background task of the app)."""
        try:
            while True:
                self._wake.clear()
                timeout: float | None
                try:
                    await self._start_due()
                    await self._maybe_prune()
                    nxt = await self._store.webhooks.next_due(*self._busy())
                    timeout = None if nxt is None else max(0.0, nxt - time.time())
                except Exception:
                    log.exception("the webhook outbox failed; trying again shortly")
                    timeout = _ERROR_PAUSE
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            tasks = [task for task, _ in self._inflight.values()]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _busy(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The deliveries being sent, and their URLs."""
        return tuple(self._inflight), tuple({url for _, url in self._inflight.values()})

    async def _start_due(self) -> None:
        free = self._settings.current.webhooks.concurrency - len(self._inflight)
        if free <= 0:
            return
        rows = await self._store.webhooks.due(time.time(), free, *self._busy())
        for row in rows:
            if row.url in {url for _, url in self._inflight.values()}:
                continue  # one delivery per URL at a time: the next waits for this one's end
            task = asyncio.create_task(self._deliver(row), name=f"sora2api.webhook-{row.id}")
            self._inflight[row.id] = (task, row.url)

    async def _maybe_prune(self) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_INTERVAL
        keep = self._settings.current.webhooks.keep_days * 86400.0
        await self._store.webhooks.prune(now - keep)

    async def _deliver(self, row: DeliveryRow) -> None:
        try:
            await self._attempt(row)
        except Exception:
            log.exception("webhook delivery %s crashed", row.id)
        finally:
            self._inflight.pop(row.id, None)
            self._wake.set()  # a slot is free and the row's next time changed
            recorded, self._recorded = self._recorded, asyncio.Event()
            recorded.set()

    async def _attempt(self, row: DeliveryRow) -> None:
        cfg = self._settings.current.webhooks
        secret = (
            self._bootstrap_secret if row.key_id is None else await self._key_secret(row.key_id)
        )
        now = time.time()
        if secret is None:
            await self._store.webhooks.attempted(
                row.id,
                status=FAILED,
                at=now,
                http_status=None,
                error="The API key of this job was deleted; nothing to sign with",
                next_at=None,
            )
            return
        body = event_body(row)
        stamp = int(now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sora2api-webhooks",
            "webhook-id": row.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, row.id, stamp, body),
        }
        status: int | None = None
        try:
            async with asyncio.timeout(cfg.timeout):
                status, answer = await self._post(row.url, headers, body, cfg.max_response_kb)
            error = None if 200 <= status < 300 else f"HTTP {status}: {_printable(answer)}".strip()
        except ApiError as exc:  # the URL guard refused the destination
            error = exc.message
        except TimeoutError:
            error = f"No answer within {cfg.timeout:g} s ([webhooks] timeout)"
        except (aiohttp.ClientError, OSError) as exc:
            error = _printable(f"{type(exc).__name__}: {exc}")
        done = time.time()
        if error is None:
            await self._store.webhooks.attempted(
                row.id, status=DELIVERED, at=done, http_status=status, error=None, next_at=None
            )
            return
        wait = min(cfg.first_retry * cfg.backoff_factor**row.attempts, cfg.max_retry_interval)
        if done + wait > row.created_at + cfg.max_age:
            error = f"Gave up after {row.attempts + 1} attempts: {error}"
            await self._store.webhooks.attempted(
                row.id, status=FAILED, at=done, http_status=status, error=error, next_at=None
            )
            return
        await self._store.webhooks.attempted(
            row.id, status=PENDING, at=done, http_status=status, error=error, next_at=done + wait
        )

    async def _post(
        self, url: str, headers: dict[str, str], body: bytes, max_kb: int
    ) -> tuple[int, str]:
        """POST through the URL guard (checked, pinned addresses; redirects are not followed, a
        3xx counts as a failure); returns the status and the start of the answer."""
        targets = await self._guard.pinned(check_url(url))
        failure: Exception | None = None
        for target in targets:
            try:
                async with self._session.post(
                    target.url,
                    data=body,
                    headers={**headers, **target.headers},
                    allow_redirects=False,
                    raise_for_status=False,
                    server_hostname=target.server_hostname,
                ) as resp:
                    answer = await resp.content.read(max_kb * 1024)
                    return resp.status, answer[:500].decode("utf-8", "replace")
            except aiohttp.ClientConnectorError as exc:
                failure = exc  # nothing was sent: the next address is safe to try
        raise failure or OSError(f"cannot connect to {display_url(url)}")
