"""The api_keys table: one row per API key the admin created, read whole into the key ring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .base import StoreBase


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """One api_keys row with its JSON columns decoded. The key itself is never stored."""

    id: int
    name: str
    key_hash: str
    key_hint: str
    webhook_secret: str
    models: tuple[str, ...] | None
    expires_at: float | None
    enabled: bool
    limits: dict[str, int]
    webhook_urls: tuple[str, ...]
    progress_format: str | None
    content_format: str | None
    created_at: float
    updated_at: float


def _row(raw: Mapping[str, Any]) -> ApiKeyRow:
    models = orjson.loads(raw["models"]) if raw["models"] else None
    return ApiKeyRow(
        id=int(raw["id"]),
        name=str(raw["name"]),
        key_hash=str(raw["key_hash"]),
        key_hint=str(raw["key_hint"]),
        webhook_secret=str(raw["webhook_secret"]),
        models=tuple(models) if models is not None else None,
        expires_at=float(raw["expires_at"]) if raw["expires_at"] is not None else None,
        enabled=bool(raw["enabled"]),
        limits={str(k): int(v) for k, v in orjson.loads(raw["limits"] or "{}").items()},
        webhook_urls=tuple(orjson.loads(raw["webhook_urls"] or "[]")),
        progress_format=raw["progress_format"],
        content_format=raw["content_format"],
        created_at=float(raw["created_at"]),
        updated_at=float(raw["updated_at"]),
    )


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values → column values (JSON columns encoded)."""
    out = dict(values)
    if "models" in out:
        out["models"] = (
            orjson.dumps(list(out["models"])).decode() if out["models"] is not None else None
        )
    for name in ("limits", "webhook_urls"):
        if name in out:
            value = out[name]
            out[name] = orjson.dumps(list(value) if isinstance(value, tuple) else value).decode()
    if "enabled" in out:
        out["enabled"] = int(bool(out["enabled"]))
    return out


class ApiKeys:
    """Queries of api_keys."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def all(self) -> list[ApiKeyRow]:
        return [_row(r) for r in await self._db.fetchall("SELECT * FROM api_keys ORDER BY id")]

    async def get(self, key_id: int) -> ApiKeyRow | None:
        raw = await self._db.fetchone("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        return _row(raw) if raw else None

    async def add(self, values: Mapping[str, Any]) -> ApiKeyRow:
        key_id = await self._db.insert("api_keys", _columns(values))
        row = await self.get(key_id)
        assert row is not None
        return row

    async def update(self, key_id: int, values: Mapping[str, Any]) -> ApiKeyRow | None:
        await self._db.update("api_keys", "id", key_id, _columns(values))
        return await self.get(key_id)

    async def delete(self, key_id: int) -> bool:
        return await self._db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,)) > 0
