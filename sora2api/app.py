"""The application factory: middlewares, resources in dependency order, the route table."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import suppress

import aiohttp
from aiohttp import web

from . import keys
from .account_io import AccountFiles
from .account_tests import AccountTests
from .account_views import AccountViews
from .auth import Auth
from .config import Config
from .errors import ApiError, PayloadTooLargeError, error_response, from_http_exception
from .flows.dispatch import resume_job, run_job
from .jobs import JobEngine
from .media import MediaCache
from .metrics import Metrics
from .onboarding import Onboarding
from .pool import TokenPool
from .providers.registry import live_providers
from .providers.sora.account import SoraAccounts
from .providers.sora.client import SoraClient
from .providers.sora.convert import SoraConversions
from .providers.sora.reconcile import undo_side_effects
from .providers.sora.watcher import Watchers
from .registry import ModelListing
from .reqlog import CLIENT_CLOSED, LOGGED_PREFIXES, REQLOG, RequestLog
from .retention import RETENTION, Retention
from .routes import Handler, add_routes
from .settings import Settings
from .sse import OpenStreams
from .store import Store
from .urlguard import UrlGuard
from .webhooks import Outbox

log = logging.getLogger(__name__)


async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a handler and turn every failure into the OpenAI error envelope with the right status.
    A declared body over [security] max_body_mb is refused before anything reads it."""
    try:
        length = request.content_length
        if length is not None:
            limit = request.app[keys.CONFIG].security.max_body_mb * 1024 * 1024
            if length > limit:
                raise PayloadTooLargeError(
                    f"Request body of {length} bytes is over the "
                    f"{limit // (1024 * 1024)} MB limit ([security] max_body_mb)"
                )
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            log.warning("%s %s -> %d %s", request.method, request.path, exc.status, exc.message)
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and 204s pass through
        return error_response(from_http_exception(exc))
    except (ConnectionResetError, OSError) as exc:
        if request.transport is None or request.transport.is_closing():
            raise  # the client left; nothing can be sent
        log.exception("unhandled I/O error on %s %s", request.method, request.path)
        return error_response(ApiError(f"Internal error: {type(exc).__name__}"))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError("Internal server error"))


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`answer` as a middleware of its own (the service folds it into service_middleware)."""
    return await answer(request, handler)


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware layer. aiohttp re-wraps every layer on every request, so one layer doing
    three things (request log, error envelope, body limit) is measurably cheaper than three."""
    reqlog = request.app[REQLOG] if request.path.startswith(LOGGED_PREFIXES) else None
    if reqlog is None:
        return await answer(request, handler)
    started = time.perf_counter()
    status = 500
    try:
        response = await answer(request, handler)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects and 204s pass through answer()
        status = exc.status
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        status = CLIENT_CLOSED
        raise
    finally:
        if status == 200 and request.path == "/v1/models" and request.method == "GET":
            reqlog.note_listing(started)
        else:
            reqlog.note(request, status, started)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    db_path = config.storage.db_path
    store = await Store.open(db_path if db_path == ":memory:" else config.path(db_path))
    app[keys.STORE] = store
    settings = Settings(config, store)
    await settings.load()
    app[keys.SETTINGS] = settings
    auth = Auth(settings, store)
    await auth.load()
    app[keys.AUTH] = auth
    yield
    await store.close()


async def _reqlog_ctx(app: web.Application) -> AsyncIterator[None]:
    """The request log's writer task; a final flush on shutdown. Start-up does not wait for
    pruning: the retention task does it in the background."""
    auth = app[keys.AUTH]
    reqlog = RequestLog(app[keys.STORE], app[keys.SETTINGS], keys.REQ_ADMIN, lambda: auth.api_key)
    app[REQLOG] = reqlog
    task = asyncio.create_task(reqlog.run(), name="sora2api.request-log")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    try:
        await reqlog.flush()
    except Exception:
        log.exception("could not write the last request log entries")


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    # No total timeout: video downloads and long polls are bounded by asyncio.timeout where they run.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=15, sock_read=config.upstream.request_timeout
    )
    streams = app[keys.STREAMS] = OpenStreams()
    metrics = app[keys.METRICS] = Metrics(app[keys.SETTINGS], app[keys.STORE], streams)
    session = aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=200),
        # Times every upstream API call of every provider for GET /metrics.
        trace_configs=[metrics.trace_config()],
    )
    app[keys.HTTP] = session
    client = SoraClient(app[keys.SETTINGS], session)
    app[keys.CLIENT] = client
    yield
    await client.close()
    await session.close()


async def media_context(app: web.Application) -> AsyncIterator[None]:
    """The URL guard and the media cache, and the cache's pruner task while running."""
    settings, session = app[keys.SETTINGS], app[keys.HTTP]
    app[keys.GUARD] = UrlGuard(settings, session)
    media = app[keys.MEDIA] = MediaCache(settings, session)
    pruner = asyncio.create_task(media.run_pruner(), name="sora2api.media.pruner")
    try:
        yield
    finally:
        pruner.cancel()
        with suppress(asyncio.CancelledError):
            await pruner


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = TokenPool(app[keys.SETTINGS], app[keys.STORE])
    await pool.load()
    app[keys.POOL] = pool
    app[keys.METRICS].attach(pool, app[keys.MEDIA])
    app[keys.LISTING] = ModelListing()
    yield


async def _tokens_ctx(app: web.Application) -> AsyncIterator[None]:
    """The accounts of every provider, Sora's token lifecycle and its background refresh task."""
    settings, store, pool, http = (
        app[keys.SETTINGS],
        app[keys.STORE],
        app[keys.POOL],
        app[keys.HTTP],
    )
    providers = app[keys.PROVIDERS] = live_providers()
    sora = SoraAccounts(settings, store, app[keys.CLIENT], pool)
    app[keys.TOKENS] = sora
    app[keys.SORA_CONVERT] = SoraConversions(settings, store, app[keys.CLIENT], pool)
    onboarding = Onboarding(settings, store, pool, sora, http, providers, app[keys.GUARD])
    app[keys.ACCOUNTS] = onboarding
    app[keys.ACCOUNT_FILES] = AccountFiles(settings, store, sora, onboarding)
    app[keys.ACCOUNT_VIEWS] = AccountViews(settings, pool)
    app[keys.ACCOUNT_TESTS] = AccountTests(settings, pool, sora, http, providers)
    task = asyncio.create_task(sora.run_refresher(), name="sora2api.token-refresher")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    await sora.close()


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    # Sora's list-poll watchers (one per busy token) serve its flows; they close after the jobs.
    watchers = Watchers(app[keys.SETTINGS], app[keys.POOL], app[keys.CLIENT])
    engine = JobEngine(
        app[keys.SETTINGS],
        app[keys.STORE],
        app[keys.POOL],
        app[keys.CLIENT],
        watchers,
        app[keys.MEDIA],
        flow=run_job,
        resume_flow=resume_job,
        after_video=app[keys.TOKENS].refresh_quota,
        undo=undo_side_effects,
        http=app[keys.HTTP],
    )
    app[keys.JOBS] = engine
    await engine.resume_all()
    yield
    # Running jobs stay in_progress in the database and are resumed by the next start.
    await engine.close()
    await watchers.close()


async def _webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The webhook outbox and its sender task; after the job engine, whose final updates wake it."""
    store = app[keys.STORE]

    async def key_secret(key_id: int) -> str | None:
        row = await store.api_keys.get(key_id)
        return row.webhook_secret if row is not None else None

    outbox = Outbox(app[keys.SETTINGS], store, app[keys.HTTP], app[keys.GUARD], key_secret)
    await outbox.load()
    app[keys.WEBHOOKS] = outbox
    task = asyncio.create_task(outbox.run(), name="sora2api.webhooks")
    app[keys.JOBS].on_final = outbox.wake
    app[keys.METRICS].backlog = outbox.backlog
    yield
    app[keys.METRICS].backlog = None
    app[keys.JOBS].on_final = None
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    # Started after the job engine: pruned jobs leave its cache of finished answers.
    retention = Retention(
        app[keys.STORE], app[keys.SETTINGS], app[REQLOG].prune, app[keys.JOBS].job_changed
    )
    app[RETENTION] = retention
    task = asyncio.create_task(retention.run(), name="sora2api.retention")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _release_followers(app: web.Application) -> None:
    if keys.JOBS in app:
        app[keys.JOBS].release_followers()


def create_app(config: Config) -> web.Application:
    """Build the whole service for one config."""
    app = web.Application(
        middlewares=[service_middleware],
        client_max_size=config.security.max_body_mb * 1024 * 1024,
    )
    app[keys.CONFIG] = config
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_reqlog_ctx)  # batched request-log writer + retention
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(media_context)
    app.cleanup_ctx.append(_pool_ctx)
    app.cleanup_ctx.append(_tokens_ctx)  # accounts + Sora's background refresh task
    app.cleanup_ctx.append(_jobs_ctx)
    app.cleanup_ctx.append(_webhooks_ctx)  # the webhook outbox's sender
    # Prunes jobs, deleted characters and request-log rows past their [storage] limits.
    app.cleanup_ctx.append(_retention_ctx)
    # Before aiohttp waits for open requests: end streams cleanly, their jobs resume after restart.
    app.on_shutdown.append(_release_followers)
    add_routes(app)
    return app
