"""GET /metrics: the service's live state and upstream figures in the Prometheus text format.

Everything that already exists as state (jobs, accounts, the queue, the media cache, open streams)
is read at scrape time by one Collector; only what happens between scrapes (upstream calls,
failures, queue waits) is counted, in a CollectorRegistry of this app's own, so two apps in one
process never share a figure. The serving path pays nothing: no middleware, no per-request work.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .media import MediaCache
from .pool import KINDS, TokenPool, TokenState
from .providers import DEFAULT_PROVIDER
from .settings import Settings
from .sse import OpenStreams
from .store import Store
from .store.stats import ModelCount
from .upstream.errors import UpstreamFailure

ACCOUNT_STATES = ("active", "cooling", "quota", "invalid", "expired", "disabled")
# Upstream calls take from tens of milliseconds (a poll) to minutes (an upload on a slow proxy).
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# A lease waits from nothing (a free slot) up to [generation] queue_timeout.
_WAIT_BUCKETS = (0.0, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)

Backlog = Callable[[], Awaitable[int]]


def account_state(token: Any, now: float) -> str:
    """One word for an account's state, in the order the pool refuses it for."""
    if token.status == "disabled":
        return "disabled"
    if token.status in ("expired", "invalid"):
        return str(token.status)
    if token.at_expires and token.at_expires <= now:
        return "expired"
    if token.cooldown_until and token.cooldown_until > now:
        return "cooling"
    if token.quota_remaining == 0 and (token.quota_resets_at or 0) > now:
        return "quota"
    return "active"


def _count_files(folder: Path) -> int:
    """Finished files in the media folder (a download in progress is a .part file)."""
    n = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".part"):
                        n += 1
                except OSError:
                    pass  # removed meanwhile
    except FileNotFoundError:
        return 0
    return n


@dataclass(slots=True)
class _Snapshot:
    """What a scrape read asynchronously (the database, the disk, the outbox)."""

    jobs: list[ModelCount] = field(default_factory=list)
    media_files: int = 0
    webhook_backlog: int = 0


class _Live(Collector):
    """The families read from live state; the async part arrives in `snapshot` just before."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self.snapshot = _Snapshot()

    def collect(self) -> Iterator[Metric]:
        m, snap = self._m, self.snapshot
        jobs = GaugeMetricFamily(
            "sora2api_jobs",
            "Stored jobs by state, kind, provider and model",
            labels=["state", "kind", "provider", "model"],
        )
        for c in snap.jobs:
            jobs.add_metric([c.status, c.kind, c.provider, c.model], c.n)
        yield jobs

        now, mono = time.time(), time.monotonic()
        depth = GaugeMetricFamily(
            "sora2api_queue_depth", "Jobs waiting for a free account slot", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "sora2api_queue_oldest_wait_seconds",
            "How long the longest-waiting job has waited for a slot",
            labels=["kind"],
        )
        waiting = m.pool.waiting() if m.pool else []
        for kind in KINDS:
            since = [t for k, t in waiting if k == kind]
            depth.add_metric([kind], len(since))
            oldest.add_metric([kind], mono - min(since) if since else 0.0)
        yield depth
        yield oldest

        accounts = GaugeMetricFamily(
            "sora2api_accounts",
            "Pooled accounts by provider and state",
            labels=["provider", "state"],
        )
        counts: dict[str, dict[str, int]] = {}
        tokens: list[TokenState] = m.pool.tokens() if m.pool else []
        for t in tokens:
            per = counts.setdefault(t.token.provider, dict.fromkeys(ACCOUNT_STATES, 0))
            per[account_state(t.token, now)] += 1
        for provider, per in sorted(counts.items()):
            for state, n in per.items():
                accounts.add_metric([provider, state], n)
        yield accounts

        yield GaugeMetricFamily(
            "sora2api_media_cache_bytes",
            "Bytes in the media cache (finished files and running downloads)",
            value=m.media.budget.used if m.media else 0,
        )
        yield GaugeMetricFamily(
            "sora2api_media_cache_files",
            "Finished files in the media cache",
            value=snap.media_files,
        )
        yield GaugeMetricFamily(
            "sora2api_webhook_backlog",
            "Webhook deliveries still to make",
            value=snap.webhook_backlog,
        )
        yield GaugeMetricFamily(
            "sora2api_sse_streams_open", "Server-sent event streams open now", value=m.streams.count
        )


class Metrics:
    """One app's registry: live families, upstream and queue figures, and the observers that
    feed them (a TraceConfig on the app's ClientSession, two hooks on the pool)."""

    def __init__(self, settings: Settings, store: Store, streams: OpenStreams) -> None:
        self.settings, self.store, self.streams = settings, store, streams
        # Set by attach() once they exist (the ClientSession that carries the trace comes first).
        self.pool: TokenPool | None = None
        self.media: MediaCache | None = None
        self.backlog: Backlog | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self._live = _Live(self)
        self.registry.register(self._live)
        self.upstream_seconds = Histogram(
            "sora2api_upstream_request_seconds",
            "Upstream API calls: time to the response headers, by provider and outcome",
            ["provider", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "sora2api_upstream_errors",
            "Classified upstream failures reported against an account, by provider and kind",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "sora2api_queue_wait_seconds",
            "Time a job waited for an account slot",
            ["kind"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        # [(URL prefix, provider)], longest first, built for one pool version and settings snapshot
        # (held, so it is compared by identity: it is swapped whole on every change).
        self._prefix_for: tuple[int, object] | None = None
        self._prefixes: list[tuple[str, str]] = []

    def attach(self, pool: TokenPool, media: MediaCache) -> None:
        """Read the pool and the media cache, and observe the pool's waits and failures."""
        self.pool, self.media = pool, media
        pool.on_waited = self._waited
        pool.on_failure = self._failed

    # -- observers -------------------------------------------------------------------------

    def _waited(self, kind: str, seconds: float) -> None:
        self.queue_wait.labels(kind).observe(seconds)

    def _failed(self, provider: str, failure: UpstreamFailure) -> None:
        self.upstream_errors.labels(provider, failure.kind.value).inc()

    def trace_config(self) -> aiohttp.TraceConfig:
        """Times every call of the app's ClientSession that goes to an upstream API: the one
        choke point every provider and the Sora client share, with no change to their code."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._request_start)
        trace.on_request_end.append(self._request_end)
        trace.on_request_exception.append(self._request_exception)
        return trace

    def provider_of(self, url: str) -> str | None:
        """The provider whose API `url` is on (longest configured base URL first), else None:
        media downloads, webhooks and user URLs are not upstream API calls."""
        current, pool = self.settings.current, self.pool
        version = pool.version if pool else -1
        built = self._prefix_for
        if built is None or built[0] != version or built[1] is not current:
            up = current.upstream
            pairs = {(u, DEFAULT_PROVIDER) for u in (up.base_url, up.session_url, up.oauth_url)}
            pairs |= {(t.token.base_url, t.token.provider) for t in (pool.tokens() if pool else [])}
            self._prefixes = sorted(
                ((u.rstrip("/"), p) for u, p in pairs if u), key=lambda x: -len(x[0])
            )
            self._prefix_for = (version, current)
        for prefix, provider in self._prefixes:
            if url.startswith(prefix):
                return provider
        return None

    async def _request_start(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        # Without a token nobody can read the figures: spend nothing on them.
        if self.settings.current.metrics.token:
            ctx.started = time.perf_counter()

    async def _request_end(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        if not hasattr(ctx, "started"):
            return
        provider = self.provider_of(str(params.url))
        if provider is not None:
            outcome = f"{params.response.status // 100}xx"
            self.upstream_seconds.labels(provider, outcome).observe(
                time.perf_counter() - ctx.started
            )

    async def _request_exception(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        if not hasattr(ctx, "started"):
            return
        provider = self.provider_of(str(params.url))
        if provider is not None:
            outcome = "timeout" if isinstance(params.exception, TimeoutError) else "error"
            self.upstream_seconds.labels(provider, outcome).observe(
                time.perf_counter() - ctx.started
            )

    # -- scrape ----------------------------------------------------------------------------

    async def render(self) -> bytes:
        """The whole exposition, read now."""
        jobs = await self.store.stats.job_model_counts()
        files = await asyncio.to_thread(_count_files, self.media.dir) if self.media else 0
        # The webhook outbox's backlog() (set by app.py's webhooks context).
        backlog = await self.backlog() if self.backlog is not None else 0
        # No await between setting the snapshot and rendering: one scrape cannot see another's.
        self._live.snapshot = _Snapshot(jobs, files, backlog)
        return generate_latest(self.registry)
