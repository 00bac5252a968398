"""Sora credential conversions (ST → AT, RT → AT) and the proxy check: nothing is added."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from typing import Any

from ...credentials import as_number, check_proxy
from ...errors import BadRequestError, NotFoundError, as_api_error
from ...jwt import jwt_email
from ...mask import mask_proxy
from ...pool import TokenPool
from ...settings import Settings
from ...store import Store
from ...upstream.errors import UpstreamFailure
from .client import SoraClient
from .probe import claims_of, reason_of
from .refresh import replace_rt


class SoraConversions:
    """Turn a session or refresh token into an access token; reach Sora through a proxy."""

    def __init__(
        self, settings: Settings, store: Store, client: SoraClient, pool: TokenPool
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._pool = pool

    async def st2at(self, st: str, proxy: str | None = None) -> dict[str, Any]:
        """Convert a session token (nothing stored)."""
        st = (st or "").strip()
        if not st:
            raise BadRequestError("'st' is required", param="st")
        try:
            data = await self._client.st_to_at(st, check_proxy(proxy) or None)
        except UpstreamFailure as f:
            raise as_api_error(
                f,
                message=f"Converting the session token failed: {reason_of(f)}",
                param="st",
                caller_input=True,
            ) from None
        at = str(data["accessToken"])
        claims = claims_of(at, "auth/session")
        raw_user = data.get("user")
        user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
        return {
            "access_token": at,
            "email": user.get("email") or jwt_email(claims),
            "expires": data.get("expires"),
            "at_expires": as_number(claims.get("exp")),
        }

    async def rt2at(
        self, rt: str, client_id: str | None = None, proxy: str | None = None
    ) -> dict[str, Any]:
        """Convert a refresh token. It rotates: a stored token using it gets the new pair too."""
        rt = (rt or "").strip()
        if not rt:
            raise BadRequestError("'rt' is required", param="rt")
        stored = await self._store.tokens.by_refresh_token(rt)
        if stored and not client_id:
            client_id = stored.client_id
        try:
            data = await self._client.rt_to_at(rt, client_id or None, check_proxy(proxy) or None)
        except UpstreamFailure as f:
            raise as_api_error(
                f,
                message=f"Converting the refresh token failed: {reason_of(f)}",
                param="rt",
                caller_input=True,
            ) from None
        at = str(data["access_token"])
        claims = claims_of(at, "oauth/token")
        new_rt = data.get("refresh_token") if isinstance(data.get("refresh_token"), str) else None
        out: dict[str, Any] = {
            "access_token": at,
            "refresh_token": new_rt or rt,
            "refresh_token_rotated": bool(new_rt and new_rt != rt),
            "expires_in": data.get("expires_in"),
            "email": jwt_email(claims),
            "at_expires": as_number(claims.get("exp")),
            "updated_token_id": None,
        }
        if stored and new_rt and new_rt != rt:
            # Otherwise the stored token would keep a refresh token that no longer works.
            extra = {"access_token": at, "at_expires": out["at_expires"]}
            with suppress(NotFoundError):
                await self._pool.transition(stored.id, replace_rt(rt, new_rt, extra))
                out["updated_token_id"] = stored.id
        return out

    async def test_proxy(self, proxy_url: str) -> dict[str, Any]:
        """Reach the upstream base URL through a proxy; any HTTP answer counts as reachable."""
        proxy = check_proxy(proxy_url)
        if not proxy:
            raise BadRequestError("'proxy' is required", param="proxy")
        limit = min(15.0, self._settings.current.upstream.request_timeout)
        start = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                await self._client.request(
                    "GET",
                    self._client.url("/"),
                    None,
                    proxy=proxy,
                    expect_json=False,
                    ok=tuple(range(100, 600)),
                )
        except TimeoutError:
            return {
                "ok": False,
                "proxy": mask_proxy(proxy),
                "error": f"no answer within {limit:g} s",
            }
        except UpstreamFailure as f:
            return {"ok": False, "proxy": mask_proxy(proxy), "error": reason_of(f)}
        except Exception as exc:  # a broken SOCKS URL raises from aiohttp-socks itself
            return {
                "ok": False,
                "proxy": mask_proxy(proxy),
                "error": f"{type(exc).__name__}: {exc}",
            }
        return {
            "ok": True,
            "proxy": mask_proxy(proxy),
            "latency_ms": round((time.monotonic() - start) * 1000, 1),
        }
