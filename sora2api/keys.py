"""The application's typed state keys, in one place so modules never import each other for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from .auth import Auth
    from .config import Config
    from .jobs import JobEngine
    from .media import MediaCache, UrlGuard
    from .pool import TokenPool
    from .settings import Settings
    from .store import Store
    from .tokens import TokenManager
    from .upstream.client import SoraClient

CONFIG = web.AppKey("sora2api.config", "Config")
STORE = web.AppKey("sora2api.store", "Store")
SETTINGS = web.AppKey("sora2api.settings", "Settings")
HTTP = web.AppKey("sora2api.http", ClientSession)
GUARD = web.AppKey("sora2api.guard", "UrlGuard")
MEDIA = web.AppKey("sora2api.media", "MediaCache")
CLIENT = web.AppKey("sora2api.client", "SoraClient")
POOL = web.AppKey("sora2api.pool", "TokenPool")
TOKENS = web.AppKey("sora2api.tokens", "TokenManager")
JOBS = web.AppKey("sora2api.jobs", "JobEngine")
AUTH = web.AppKey("sora2api.auth", "Auth")

# Per-request values (aiohttp 3.14 wants typed keys here too). Handlers set them; the request
# log middleware reads them.
REQ_MODEL = web.RequestKey("sora2api.model", str)
REQ_JOB_ID = web.RequestKey("sora2api.job_id", str)
