"""The characters table: cameos created through the service, soft-deleted, pruned by retention."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .base import Row, StoreBase

_SELECT = (
    "SELECT c.*, t.email AS token_email FROM characters c LEFT JOIN tokens t ON t.id = c.token_id"
)


@dataclass(frozen=True, slots=True)
class CharacterRow:
    """One character with the email of the token that created it (None once that is gone)."""

    id: int
    token_id: int | None
    cameo_id: str
    character_id: str | None
    username: str | None
    display_name: str | None
    created_at: float
    visibility: str
    job_id: str | None
    deleted: int
    token_email: str | None

    @classmethod
    def of(cls, row: Row) -> CharacterRow:
        return cls(**{f: row[f] for f in _FIELDS})


_FIELDS = tuple(f.name for f in fields(CharacterRow))


class Characters:
    """Queries of the characters table."""

    def __init__(self, db: StoreBase) -> None:
        self._db = db

    async def find(self, token_id: int | None, include_deleted: bool) -> list[CharacterRow]:
        """Newest first; of one token when given, live ones unless `include_deleted`."""
        where, params = [], []
        if not include_deleted:
            where.append("c.deleted = 0")
        if token_id is not None:
            where.append("c.token_id = ?")
            params.append(token_id)
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._db.fetchall(sql + " ORDER BY c.id DESC", params)
        return [CharacterRow.of(r) for r in rows]

    async def get(self, char_id: int) -> CharacterRow | None:
        row = await self._db.fetchone(_SELECT + " WHERE c.id = ?", (char_id,))
        return CharacterRow.of(row) if row is not None else None

    async def add(
        self,
        *,
        token_id: int | None,
        cameo_id: str,
        character_id: str | None,
        username: str | None,
        display_name: str | None,
        visibility: str,
        job_id: str | None,
        created_at: float,
    ) -> int:
        """Record a character created through the service; returns its id."""
        return await self._db.insert(
            "characters",
            {
                "token_id": token_id,
                "cameo_id": cameo_id,
                "character_id": character_id,
                "username": username,
                "display_name": display_name,
                "visibility": visibility,
                "job_id": job_id,
                "created_at": created_at,
            },
        )

    async def set_visibility(self, char_id: int, visibility: str) -> None:
        await self._db.update("characters", "id", char_id, {"visibility": visibility})

    async def mark_deleted(self, char_id: int) -> None:
        await self._db.update("characters", "id", char_id, {"deleted": 1})

    async def mark_deleted_upstream_id(self, character_id: str) -> None:
        """Mark deleted the row of an upstream character (a job's temporary one)."""
        await self._db.execute(
            "UPDATE characters SET deleted = 1 WHERE character_id = ?", (character_id,)
        )

    async def nth_newest_deleted(self, n: int) -> float | None:
        """created_at of the n-th newest deleted character (1-based), or None."""
        row = await self._db.fetchone(
            "SELECT created_at FROM characters WHERE deleted = 1"
            " ORDER BY created_at DESC LIMIT 1 OFFSET ?",
            (n - 1,),
        )
        return float(row["created_at"]) if row else None

    async def delete_deleted_before(self, cutoff: float, batch: int) -> int:
        """Forget deleted characters created before `cutoff`, `batch` rows per statement."""
        return await self._db.delete_batched(
            "DELETE FROM characters WHERE id IN"
            " (SELECT id FROM characters WHERE deleted = 1 AND created_at < ? LIMIT ?)",
            (cutoff,),
            batch,
        )
