"""The admin_sessions table: one row per panel login, keyed by the hash of its bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from .base import StoreBase


@dataclass(frozen=True, slots=True)
class SessionRow:
    """What a session token stands for."""

    username: str
    expires_at: float


class Sessions:
    """Queries of admin_sessions; the token itself is never stored, only its SHA-256."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def add(
        self, token_hash: str, username: str, created_at: float, expires_at: float, client: str
    ) -> None:
        await self._db.insert(
            "admin_sessions",
            {
                "token_hash": token_hash,
                "username": username,
                "created_at": created_at,
                "expires_at": expires_at,
                "client": client,
            },
        )

    async def get(self, token_hash: str) -> SessionRow | None:
        row = await self._db.fetchone(
            "SELECT username, expires_at FROM admin_sessions WHERE token_hash = ?", (token_hash,)
        )
        return SessionRow(str(row["username"]), float(row["expires_at"])) if row else None

    async def delete_expired(self, now: float) -> int:
        return await self._db.execute("DELETE FROM admin_sessions WHERE expires_at < ?", (now,))

    async def delete(self, token_hash: str) -> None:
        await self._db.execute("DELETE FROM admin_sessions WHERE token_hash = ?", (token_hash,))

    async def delete_all(self) -> None:
        await self._db.execute("DELETE FROM admin_sessions")
