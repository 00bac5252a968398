"""Connection, migrations and the small query helpers every area of the store uses."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import aiosqlite

from .migrations import MIGRATIONS

log = logging.getLogger(__name__)

Row = dict[str, Any]


class StoreBase:
    """Owns the connection; subclasses and mixins add domain queries."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: str | Path, *, migrations: tuple[str, ...] = MIGRATIONS) -> Self:
        """Open (creating folders), switch to WAL and bring the schema to the current version."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path))
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable under WAL except on power loss, and much faster for many small writes.
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await _migrate(conn, migrations)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(next(iter(row.values()))) if row else 0

    async def execute(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> int:
        """Run one statement and commit; returns lastrowid for inserts, rowcount otherwise."""
        cur = await self._conn.execute(sql, params)
        await self._conn.commit()
        if sql.lstrip()[:6].upper() == "INSERT":
            return int(cur.lastrowid or 0)
        return cur.rowcount

    async def delete_batched(self, sql: str, params: Iterable[Any] = (), batch: int = 2000) -> int:
        """Run a DELETE whose last parameter is a LIMIT until it deletes fewer rows than `batch`;
        returns the rows deleted. Other queries run between two batches: one big delete would
        hold the connection (and start-up, or every request) for seconds."""
        total = 0
        while True:
            n = await self.execute(sql, (*params, batch))
            total += n
            if n < batch:
                return total
            await asyncio.sleep(0)

    async def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> None:
        await self._conn.executemany(sql, seq)
        await self._conn.commit()

    async def fetchone(
        self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
    ) -> Row | None:
        async with self._conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [dict(r) for r in rows]

    async def insert(self, table: str, values: Mapping[str, Any]) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return await self.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(values.values())
        )

    async def update(self, table: str, key: str, key_value: Any, values: Mapping[str, Any]) -> int:
        if not values:
            return 0
        sets = ", ".join(f"{c} = ?" for c in values)
        return await self.execute(
            f"UPDATE {table} SET {sets} WHERE {key} = ?", [*values.values(), key_value]
        )


async def _migrate(conn: aiosqlite.Connection, migrations: tuple[str, ...]) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(migrations):
        raise RuntimeError(
            f"database schema version {version} is newer than this program knows ({len(migrations)})"
        )
    for number in range(version + 1, len(migrations) + 1):
        # One transaction per version: a failed migration leaves the previous version intact.
        statements = _statements(migrations[number - 1])
        await conn.execute("BEGIN")
        try:
            for stmt in statements:
                await conn.execute(stmt)
            await conn.execute(f"PRAGMA user_version = {number}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        log.info("database migrated to schema version %d", number)


def _statements(script: str) -> list[str]:
    """Split a migration into statements; a trigger body's inner semicolons do not end one."""
    out: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip())
    return out
