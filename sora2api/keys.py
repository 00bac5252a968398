"""The application's typed state keys. Only app.py and routes/ import this module (the types it
names are imported for annotations only), so nothing below the routes depends on the app's shape."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import ClientSession, web

if TYPE_CHECKING:  # only annotations: keys.py stays cheap to import
    from .account_io import AccountFiles
    from .account_tests import AccountTests
    from .account_views import AccountViews
    from .auth import AdminSession, Auth
    from .config import Config
    from .jobs import JobEngine
    from .media import MediaCache
    from .metrics import Metrics
    from .onboarding import Onboarding
    from .pool import TokenPool
    from .providers.registry import ProviderRegistry
    from .providers.sora.account import SoraAccounts
    from .providers.sora.client import SoraClient
    from .providers.sora.convert import SoraConversions
    from .registry import ModelListing
    from .settings import Settings
    from .sse import OpenStreams
    from .store import ApiKeyRow, Store
    from .urlguard import UrlGuard
    from .webhooks import Outbox

CONFIG: web.AppKey[Config] = web.AppKey("sora2api.config")
STORE: web.AppKey[Store] = web.AppKey("sora2api.store")
SETTINGS: web.AppKey[Settings] = web.AppKey("sora2api.settings")
AUTH: web.AppKey[Auth] = web.AppKey("sora2api.auth")
HTTP = web.AppKey("sora2api.http", ClientSession)
GUARD: web.AppKey[UrlGuard] = web.AppKey("sora2api.guard")
MEDIA: web.AppKey[MediaCache] = web.AppKey("sora2api.media")
CLIENT: web.AppKey[SoraClient] = web.AppKey("sora2api.client")
POOL: web.AppKey[TokenPool] = web.AppKey("sora2api.pool")
PROVIDERS: web.AppKey[ProviderRegistry] = web.AppKey("sora2api.providers")
# Sora's token lifecycle (add, test, refresh, quota, activation) and its conversions.
TOKENS: web.AppKey[SoraAccounts] = web.AppKey("sora2api.tokens")
SORA_CONVERT: web.AppKey[SoraConversions] = web.AppKey("sora2api.sora_convert")
# Accounts of every provider: adding and editing, import/export, listings, tests.
ACCOUNTS: web.AppKey[Onboarding] = web.AppKey("sora2api.accounts")
ACCOUNT_FILES: web.AppKey[AccountFiles] = web.AppKey("sora2api.account_files")
ACCOUNT_VIEWS: web.AppKey[AccountViews] = web.AppKey("sora2api.account_views")
ACCOUNT_TESTS: web.AppKey[AccountTests] = web.AppKey("sora2api.account_tests")
JOBS: web.AppKey[JobEngine] = web.AppKey("sora2api.jobs")
LISTING: web.AppKey[ModelListing] = web.AppKey("sora2api.model_listing")
# The webhook outbox (webhooks.py): its bootstrap secret and its backlog.
WEBHOOKS: web.AppKey[Outbox] = web.AppKey("sora2api.webhooks")
# SSE streams open now, and GET /metrics (its registry and the observers it installs).
STREAMS: web.AppKey[OpenStreams] = web.AppKey("sora2api.streams")
METRICS: web.AppKey[Metrics] = web.AppKey("sora2api.metrics")

# Per-request values (aiohttp 3.14 wants typed keys here too); those the request log reads
# live in reqlog.py. The admin session of a request authenticated by one (absent for API-key requests).
REQ_ADMIN: web.RequestKey[AdminSession] = web.RequestKey("sora2api.admin_session")
# The created API key a request came with (absent for the bootstrap key and admin sessions, which
# see every job).
REQ_KEY: web.RequestKey[ApiKeyRow] = web.RequestKey("sora2api.api_key")
