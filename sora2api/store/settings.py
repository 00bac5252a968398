"""The settings table: JSON values by key (the panel's overrides, admin credentials, API key)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import StoreBase


@dataclass(frozen=True, slots=True)
class SettingRow:
    """One stored value, still JSON text."""

    key: str
    value: str


class SettingsTable:
    """Queries of the settings table."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def with_prefix(self, prefix: str) -> list[SettingRow]:
        rows = await self._db.fetchall(
            "SELECT key, value FROM settings WHERE key LIKE ?", (prefix + "%",)
        )
        return [SettingRow(str(r["key"]), str(r["value"])) for r in rows]

    async def get(self, key: str) -> str | None:
        """The JSON text stored under `key`, or None."""
        row = await self._db.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    async def put(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
