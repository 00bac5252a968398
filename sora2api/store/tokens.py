"""The tokens table: one row per upstream account, read whole into the pool at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .base import Row, StoreBase


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One tokens row as stored (flags stay 0/1 integers, as SQLite holds them)."""

    id: int
    access_token: str
    created_at: float
    email: str | None = None
    session_token: str | None = None
    refresh_token: str | None = None
    is_active: int = 1
    remark: str = ""
    client_id: str | None = None
    at_expires: float | None = None
    status: str = "active"
    status_reason: str = ""
    status_at: float | None = None
    cooldown_until: float | None = None
    cooldown_reason: str = ""
    cooldown_level: int = 0
    quota_remaining: int | None = None
    quota_resets_at: float | None = None
    plan_type: str = ""
    plan_title: str = ""
    subscription_end: str = ""
    sora2_supported: int = 0
    sora2_invite_code: str = ""
    sora2_redeemed: int = 0
    sora2_total: int = 0
    username: str = ""
    name: str = ""
    proxy: str = ""
    image_enabled: int = 1
    video_enabled: int = 1
    image_concurrency: int | None = None
    video_concurrency: int | None = None
    image_count: int = 0
    video_count: int = 0
    error_count: int = 0
    consecutive_errors: int = 0
    last_used_at: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    updated_at: float | None = None
    refresh_error: str = ""
    refresh_error_at: float | None = None
    provider: str = "sora"
    base_url: str = ""
    served_models: str = ""
    models: str = ""

    @classmethod
    def of(cls, row: Row) -> TokenRow:
        """From a fetched row; a column this class does not know yet is left out."""
        return cls(**{f: row[f] for f in _FIELDS if f in row})

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _FIELDS}


_FIELDS = tuple(f.name for f in fields(TokenRow))


class Tokens:
    """Queries of the tokens table. The pool is their only writer (see TokenPool.transition)."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def all(self) -> list[TokenRow]:
        rows = await self._db.fetchall("SELECT * FROM tokens ORDER BY id")
        return [TokenRow.of(r) for r in rows]

    async def get(self, token_id: int) -> TokenRow | None:
        row = await self._db.fetchone("SELECT * FROM tokens WHERE id = ?", (token_id,))
        return TokenRow.of(row) if row is not None else None

    async def insert(self, values: Mapping[str, Any]) -> int:
        """Add a row; returns its id."""
        return await self._db.insert("tokens", values)

    async def update(self, token_id: int, values: Mapping[str, Any]) -> int:
        return await self._db.update("tokens", "id", token_id, values)

    async def delete(self, token_id: int) -> None:
        await self._db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))

    async def id_by_email(self, email: str) -> int | None:
        """The row of an account, whatever the case of its email."""
        row = await self._db.fetchone(
            "SELECT id FROM tokens WHERE lower(email) = lower(?)", (email,)
        )
        return int(row["id"]) if row is not None else None

    async def id_by_access_token(self, at: str) -> int | None:
        row = await self._db.fetchone("SELECT id FROM tokens WHERE access_token = ?", (at,))
        return int(row["id"]) if row is not None else None

    async def id_by_account(self, provider: str, key: str, base_url: str) -> int | None:
        """The row of another provider's account: the same key at the same base URL."""
        row = await self._db.fetchone(
            "SELECT id FROM tokens WHERE provider = ? AND access_token = ? AND base_url = ?",
            (provider, key, base_url),
        )
        return int(row["id"]) if row is not None else None

    async def proxy_of_email(self, email: str) -> str | None:
        """The proxy a known account is reached through (None: unknown, or none set)."""
        row = await self._db.fetchone(
            "SELECT proxy FROM tokens WHERE lower(email) = lower(?)", (email,)
        )
        return (row or {}).get("proxy") or None

    async def by_refresh_token(self, rt: str) -> TokenRow | None:
        """The row holding refresh token `rt`, if any."""
        row = await self._db.fetchone("SELECT * FROM tokens WHERE refresh_token = ?", (rt,))
        return TokenRow.of(row) if row is not None else None
