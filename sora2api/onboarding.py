"""Adding and editing accounts of every provider: a Sora token goes to providers/sora/account.py,
another provider's API key is checked by that provider's onboard() and stored with what it said.

Re-adding the same key at the same base URL updates its row; every write goes through the pool's
one writer (TokenPool.transition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import ClientSession

from .account_rows import json_list, models_json, onboarded_values, scrub, step_of
from .credentials import OPTION_FIELDS, UNSET, check_options
from .errors import ApiError, BadRequestError, as_api_error
from .mask import mask
from .pool import TokenPool
from .providers import DEFAULT_PROVIDER
from .providers.base import Account
from .providers.registry import ProviderRegistry, default_base_url
from .providers.sora.account import SoraAccounts
from .providers.sora.probe import reason_of
from .settings import Settings
from .store import Row, Store
from .transitions import admin, readded
from .upstream.errors import UpstreamFailure
from .urlguard import UrlGuard, check_url, display_url

log = logging.getLogger(__name__)

_MAX_URL = 2000
_MAX_MODELS = 200


def check_base_url(value: Any, provider: str, default: str = "") -> str:
    """An account's base URL as its vendor's SDK takes it: http(s), a host, no query or secret."""
    if value is None or value == "":
        if not default:
            raise BadRequestError(f"'base_url' is required for {provider}", param="base_url")
        return default
    if not isinstance(value, str):
        raise BadRequestError("'base_url' must be a string (a URL)", param="base_url")
    value = value.strip()
    if len(value) > _MAX_URL:
        raise BadRequestError(f"'base_url' is longer than {_MAX_URL} characters", param="base_url")
    try:
        url = check_url(value)
    except BadRequestError as exc:
        raise BadRequestError(f"'base_url': {exc.message}", param="base_url") from None
    if url.user or url.password or url.query_string or url.fragment:
        raise BadRequestError(
            f"'base_url' must have no user, password, query or fragment: {display_url(url)}",
            param="base_url",
        )
    return str(url).rstrip("/")


def check_models(value: Any) -> list[str] | None:
    """The admin's restriction: a list of upstream model names; null or [] means all served."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise BadRequestError("'models' must be a list of model names or null", param="models")
    models = list(dict.fromkeys(m.strip() for m in value if m.strip()))
    if len(models) > _MAX_MODELS or any(len(m) > 200 for m in models):
        raise BadRequestError(
            f"'models' allows at most {_MAX_MODELS} names of 200 characters", param="models"
        )
    return models or None


def _restrict(models: list[str] | None, served: tuple[str, ...] | list[str]) -> None:
    unknown = [m for m in models or () if m not in served]
    if unknown:
        raise BadRequestError(
            f"'models' names {', '.join(unknown)}, which the account does not serve; "
            f"it serves: {', '.join(served) or 'nothing'}",
            param="models",
        )


class Onboarding:
    """Add, re-add, edit, enable and delete accounts of every provider."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pool: TokenPool,
        sora: SoraAccounts,
        http: ClientSession,
        providers: ProviderRegistry,
        guard: UrlGuard,
    ) -> None:
        self._settings = settings
        self._store = store
        self._pool = pool
        self._sora = sora
        self._http = http
        self._providers = providers
        self._guard = guard
        # Upserts by key must not interleave (two adds of one account would both insert).
        self._write_lock = asyncio.Lock()

    @property
    def providers(self) -> ProviderRegistry:
        return self._providers

    async def add_account(
        self,
        provider: str,
        key: str | None,
        base_url: Any = None,
        *,
        models: Any = UNSET,
        options: Mapping[str, Any] | None = None,
        trusted: bool = False,
        disabled_reason: str | None = None,
    ) -> tuple[Row, bool]:
        """Onboard another provider's API key; (row, created). `trusted` (an admin session or an
        import) may name a private host; the API key alone only a public one."""
        provider = provider.strip().lower()
        impl = self._providers.provider_for(provider)
        key = (key or "").strip().removeprefix("Bearer ").strip()
        if not key:
            raise BadRequestError(f"'token' (the {provider} API key) is required", param="token")
        url = check_base_url(base_url, provider, default_base_url(self._settings.current, provider))
        if not trusted:
            await self._public_host(url)
        restriction = None if models is UNSET else check_models(models)
        opts = dict(options or {})  # checked by the caller (check_options)
        existing = await self._store.tokens.id_by_account(provider, key, url)
        proxy = opts.get("proxy")
        if "proxy" not in opts and existing is not None:
            proxy = self._pool.state(existing).token.proxy  # re-added: reached as before
        started = time.time()
        account = Account(
            id=existing or 0, provider=provider, key=key, base_url=url, proxy=proxy or None
        )
        try:
            info = await impl.onboard(self._http, account)
        except UpstreamFailure as f:
            raise as_api_error(
                f,
                message=scrub(
                    f"Adding the {provider} account failed at step '{step_of(f)}': {reason_of(f)}",
                    key,
                ),
                param="token",
                caller_input=True,
            ) from None
        _restrict(restriction, info.models)
        values: dict[str, Any] = {
            **onboarded_values(info),
            "provider": provider,
            "access_token": key,
            "base_url": url,
            "status": "active",
            "status_reason": "",
            "status_at": started,
            "is_active": 1,
            "consecutive_errors": 0,
            "last_error": "",
            "last_error_at": None,
            **opts,
        }
        if restriction is not None or models is not UNSET:
            values["models"] = models_json(restriction)
        if disabled_reason:
            values.update(status="disabled", status_reason=disabled_reason, is_active=0)
        token_id, created = await self._upsert(provider, key, url, values, started)
        log.info(
            "%s account %d %s: key %s at %s, %d models",
            provider,
            token_id,
            "added" if created else "updated",
            mask(key),
            display_url(url),
            len(info.models),
        )
        return self._pool.state(token_id).row, created

    async def _public_host(self, url: str) -> None:
        try:
            await self._guard.pinned(check_url(url))
        except ApiError as exc:
            raise BadRequestError(
                f"'base_url': {exc.message}; an admin session may add an account on any host",
                param="base_url",
            ) from None

    async def _upsert(
        self, provider: str, key: str, url: str, values: dict[str, Any], started: float
    ) -> tuple[int, bool]:
        async with self._write_lock:
            existing = await self._store.tokens.id_by_account(provider, key, url)
            change = readded(values, renewing=False, started=started)
            if existing is not None:
                await self._pool.transition(existing, change)
                return existing, False
            blank: Row = {"access_token": "", "status": "active", "status_reason": ""}
            return await self._pool.insert(change(blank)), True

    # -- admin actions -------------------------------------------------------------------------

    async def set_enabled(self, token_id: int, enabled: bool) -> Row:
        """Admin enable (clears errors and cooldown) or disable ("disabled by admin")."""
        return await self._pool.transition(token_id, admin(enabled, time.time()))

    async def update(self, token_id: int, fields: Mapping[str, Any]) -> Row:
        """Change remark, proxy, enabled flags, concurrency limits or the models restriction."""
        token = self._pool.state(token_id).token
        fields = dict(fields)
        values: dict[str, Any] = {}
        if "models" in fields:
            if token.provider == DEFAULT_PROVIDER:
                raise BadRequestError(
                    "'models' restricts another provider's account; a Sora token serves Sora's",
                    param="models",
                )
            restriction = check_models(fields.pop("models"))
            _restrict(restriction, json_list(token.served_models) or [])
            values["models"] = models_json(restriction)
        values.update(check_options(fields))
        if not values:
            editable = ", ".join((*OPTION_FIELDS, "models"))
            raise BadRequestError(f"Nothing to update; editable fields: {editable}")
        await self._pool.update_row(token_id, values)
        return self._pool.state(token_id).row

    async def delete(self, token_id: int) -> None:
        """Remove an account for good (jobs holding it keep their slot until they end)."""
        await self._pool.delete(token_id)
        self._sora.refresher.forget(token_id)
        log.info("token %d deleted", token_id)
