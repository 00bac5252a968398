"""How listings show an account of any provider: no secret in full, live busy counts and limits."""

from __future__ import annotations

import time
from typing import Any

from .account_rows import json_list
from .credentials import clock_time
from .mask import mask, mask_proxy
from .pool import TokenPool, TokenState
from .settings import Settings
from .store import Row


class AccountViews:
    """Renders pool rows for GET /api/tokens and every answer that returns a token."""

    def __init__(self, settings: Settings, pool: TokenPool) -> None:
        self._settings = settings
        self._pool = pool

    def view(self, token_id: int) -> dict[str, Any]:
        """One token as listings show it: no secret in full, live busy counts and limits."""
        t = self._pool.state(token_id)
        r = t.row
        defaults = self._settings.current.pool
        now = time.time()
        return {
            "id": t.id,
            "provider": r.get("provider") or "sora",
            "base_url": r.get("base_url") or "",
            # What the upstream reported at onboarding, and the admin's restriction (null: all).
            "served_models": json_list(r.get("served_models")) or [],
            "models": json_list(r.get("models")),
            "email": r.get("email"),
            "name": r.get("name") or "",
            "username": r.get("username") or "",
            "access_token": mask(r.get("access_token")),
            "session_token": mask(r.get("session_token")),
            "refresh_token": mask(r.get("refresh_token")),
            "has_session_token": bool(r.get("session_token")),
            "has_refresh_token": bool(r.get("refresh_token")),
            "client_id": r.get("client_id"),
            "at_expires": r.get("at_expires"),
            **self._status(r, now),
            "is_active": r["status"] != "disabled",
            "available": {k: self._availability(t, k, now) for k in ("image", "video")},
            "cooldown_until": r.get("cooldown_until"),
            "cooldown_reason": r.get("cooldown_reason") or "",
            "cooldown_level": r.get("cooldown_level") or 0,
            "quota_remaining": r.get("quota_remaining"),
            "quota_resets_at": r.get("quota_resets_at"),
            "plan_type": r.get("plan_type") or "",
            "plan_title": r.get("plan_title") or "",
            "subscription_end": r.get("subscription_end") or "",
            "sora2_supported": bool(r.get("sora2_supported")),
            "sora2_invite_code": r.get("sora2_invite_code") or "",
            "sora2_redeemed": r.get("sora2_redeemed") or 0,
            "sora2_total": r.get("sora2_total") or 0,
            "image_enabled": bool(r.get("image_enabled")),
            "video_enabled": bool(r.get("video_enabled")),
            "image_concurrency": r.get("image_concurrency"),
            "video_concurrency": r.get("video_concurrency"),
            "limits": {k: t.limit(k, defaults) for k in ("image", "video")},
            "busy": dict(t.busy),
            "image_count": r.get("image_count") or 0,
            "video_count": r.get("video_count") or 0,
            "error_count": r.get("error_count") or 0,
            "consecutive_errors": r.get("consecutive_errors") or 0,
            "last_used_at": r.get("last_used_at"),
            "last_error": r.get("last_error") or "",
            "last_error_at": r.get("last_error_at"),
            # The last refresh failed (and why); the token serves on while its AT lives.
            "refresh_error": r.get("refresh_error") or "",
            "refresh_error_at": r.get("refresh_error_at"),
            "proxy": mask_proxy(r.get("proxy")),
            "remark": r.get("remark") or "",
            "created_at": r.get("created_at"),
            "updated_at": r.get("updated_at"),
        }

    def _status(self, r: Row, now: float) -> dict[str, Any]:
        """The stored status, except that an AT past its expiry shows as expired right away."""
        expires = r.get("at_expires")
        if r["status"] == "active" and expires and expires <= now:
            renew = r.get("session_token") or r.get("refresh_token")
            if renew and self._settings.current.pool.refresh_enabled:
                then = "the refresh task will renew it"
            else:
                then = "add a fresh one" if not renew else "refresh it (auto refresh is off)"
            if r.get("refresh_error"):
                then = f"the last refresh failed ({r['refresh_error']}); {then}"
            return {
                "status": "expired",
                "status_reason": f"The access token expired at {clock_time(expires)}; {then}",
                "status_at": expires,
            }
        return {
            "status": r["status"],
            "status_reason": r.get("status_reason") or "",
            "status_at": r.get("status_at"),
        }

    def _availability(self, t: TokenState, kind: str, now: float) -> str:
        word = t.ineligible(kind, now)
        if word:
            return str(word)
        limit = t.limit(kind, self._settings.current.pool)
        return "busy" if limit and t.busy[kind] >= limit else "available"

    def views(self) -> list[dict[str, Any]]:
        """Every account, in id order."""
        return [self.view(t.id) for t in self._pool.tokens()]
