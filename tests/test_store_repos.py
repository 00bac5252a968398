"""The store's repositories on a temporary database: round trips, typed frozen rows, and the
rule that no module outside sora2api/store/ runs SQL itself."""

from __future__ import annotations

import ast
import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from sora2api.config import Config
from sora2api.pool import TokenPool
from sora2api.settings import Settings
from sora2api.store import CharacterRow, JobRow, LogRow, SessionRow, Store, TokenRow
from sora2api.store.migrations import MIGRATIONS
from sora2api.transitions import constant

PACKAGE = Path(__file__).resolve().parent.parent / "sora2api"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "t.db")
    yield s
    await s.close()


async def _columns(store: Store, table: str) -> list[str]:
    return [str(r["name"]) for r in await store.fetchall(f"PRAGMA table_info({table})")]


async def _job(store: Store, job_id: str, status: str, created: float, **more: object) -> None:
    values = {"kind": "video", "model": "m", "request": "{}", "created_at": created, **more}
    await store.insert("jobs", {"id": job_id, "status": status, **values})


# -- tokens ------------------------------------------------------------------------------------


async def test_token_row_has_every_column_of_the_schema(store: Store) -> None:
    """A column added by a migration but not to TokenRow would vanish from the pool's view."""
    names = [f.name for f in dataclasses.fields(TokenRow)]
    assert sorted(names) == sorted(await _columns(store, "tokens"))


async def test_tokens_round_trip_as_frozen_rows(store: Store) -> None:
    tokens = store.tokens
    first = await tokens.insert(
        {"access_token": "at-1", "email": "A@Example.com", "proxy": "http://p:1", "created_at": 5.0}
    )
    second = await tokens.insert(
        {"access_token": "at-2", "refresh_token": "rt-2", "client_id": "c2", "created_at": 6.0}
    )
    row = await tokens.get(first)
    assert isinstance(row, TokenRow)
    assert (row.id, row.access_token, row.email, row.created_at) == (
        first,
        "at-1",
        "A@Example.com",
        5.0,
    )
    # The schema's defaults arrive as stored.
    assert (row.status, row.image_enabled, row.video_concurrency, row.remark) == (
        "active",
        1,
        None,
        "",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = "disabled"  # type: ignore[misc]
    assert row.as_dict()["email"] == "A@Example.com"
    assert TokenRow.of(row.as_dict()) == row

    assert await tokens.update(first, {"status": "disabled", "cooldown_level": 2}) == 1
    changed = await tokens.get(first)
    assert changed is not None
    assert (changed.status, changed.cooldown_level) == ("disabled", 2)
    assert changed == dataclasses.replace(row, status="disabled", cooldown_level=2)

    assert [t.id for t in await tokens.all()] == [first, second]
    assert await tokens.id_by_email("a@example.COM") == first
    assert await tokens.id_by_email("nobody@example.com") is None
    assert await tokens.id_by_access_token("at-2") == second
    assert await tokens.id_by_access_token("at-9") is None
    assert await tokens.proxy_of_email("a@example.com") == "http://p:1"
    assert await tokens.proxy_of_email("nobody@example.com") is None
    by_rt = await tokens.by_refresh_token("rt-2")
    assert by_rt is not None and (by_rt.id, by_rt.client_id) == (second, "c2")
    assert await tokens.by_refresh_token("rt-9") is None

    await tokens.delete(first)
    assert await tokens.get(first) is None
    assert [t.id for t in await tokens.all()] == [second]


async def test_a_column_token_row_does_not_know_is_left_out(tmp_path: Path) -> None:
    """A newer schema (another branch's migration) must not break reading the pool."""
    s = await Store.open(
        tmp_path / "n.db", migrations=(*MIGRATIONS, "ALTER TABLE tokens ADD COLUMN x TEXT")
    )
    try:
        token_id = await s.tokens.insert({"access_token": "at", "created_at": 1.0, "x": "y"})
        row = await s.tokens.get(token_id)
        assert row is not None and row.access_token == "at"
        assert "x" not in row.as_dict()
    finally:
        await s.close()


async def test_the_pool_replaces_its_frozen_row_on_a_change(store: Store) -> None:
    pool = TokenPool(Settings(Config(), store), store)
    first = await pool.insert({"access_token": "at-1", "email": "a@x.io"})
    second = await pool.insert({"access_token": "at-2", "email": "b@x.io"})
    before = pool.state(second).token
    row = await pool.transition(second, constant({"name": "Bee", "video_concurrency": 3}))
    after = pool.state(second).token
    assert after is not before and before.name == ""  # the old row is never changed in place
    assert (after.name, after.video_concurrency, row["name"]) == ("Bee", 3, "Bee")
    assert pool.state(second).limit("video", Config().pool) == 3
    assert await store.tokens.get(second) == after
    # A write the database refuses (the email is another token's) leaves memory as stored.
    with pytest.raises(sqlite3.IntegrityError):
        await pool.transition(second, constant({"email": "a@x.io"}))
    assert pool.state(second).token == after == await store.tokens.get(second)
    assert pool.state(first).token.email == "a@x.io"


# -- sessions and settings ---------------------------------------------------------------------


async def test_sessions_round_trip(store: Store) -> None:
    sessions = store.sessions
    await sessions.add("h1", "admin", 1.0, 100.0, "10.0.0.1")
    await sessions.add("h2", "admin", 1.0, 50.0, "")
    await sessions.add("h3", "other", 1.0, 200.0, "")
    assert await sessions.get("h1") == SessionRow("admin", 100.0)
    assert await sessions.get("nope") is None
    assert await sessions.delete_expired(60.0) == 1
    assert await sessions.get("h2") is None
    await sessions.delete("h1")
    assert await sessions.get("h1") is None
    assert await sessions.get("h3") == SessionRow("other", 200.0)
    await sessions.delete_all()
    assert await sessions.get("h3") is None


async def test_settings_round_trip(store: Store) -> None:
    table = store.settings
    assert await table.get("k") is None
    await table.put("panel.pool.a", "1")
    await table.put("panel.pool.a", "2")  # an upsert, not a second row
    await table.put("panel.auth.b", '"x"')
    await table.put("other", "{}")
    assert await table.get("panel.pool.a") == "2"
    rows = sorted(await table.with_prefix("panel."), key=lambda r: r.key)
    assert [(r.key, r.value) for r in rows] == [("panel.auth.b", '"x"'), ("panel.pool.a", "2")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].value = "3"  # type: ignore[misc]


# -- request log -------------------------------------------------------------------------------


def _entries(*rows: tuple[float, str, int, str | None]) -> str:
    return orjson.dumps(
        [
            [ts, "GET", path, status, 1.234, "…abcd", "", job, "1.2.3.4", 1]
            for ts, path, status, job in rows
        ]
    ).decode()


async def test_request_log_round_trip_with_job_and_token(store: Store) -> None:
    token_id = await store.tokens.insert(
        {"access_token": "at", "email": "e@x.io", "created_at": 1.0}
    )
    await _job(
        store,
        "video_1",
        "failed",
        1.0,
        token_id=token_id,
        error_code="boom",
        error_message="it broke",
    )
    log = store.request_log
    await log.insert_batch(
        _entries(
            (10.0, "/v1/a", 200, None), (20.0, "/v1/b", 502, "video_1"), (30.0, "/v1/c", 404, None)
        )
    )
    page = await log.page(2, 0)
    assert [type(r) for r in page] == [LogRow, LogRow]
    assert [r.path for r in page] == ["/v1/c", "/v1/b"]
    joined = page[1]
    assert (joined.job_id, joined.token_id, joined.job_status) == ("video_1", token_id, "failed")
    assert (joined.job_error_code, joined.job_error, joined.token_email) == (
        "boom",
        "it broke",
        "e@x.io",
    )
    assert joined.duration_ms == 1.23
    assert [r.path for r in await log.page(5, 2)] == ["/v1/a"]
    assert await log.count() == 3
    counts = await log.counts(today=15.0)
    assert (counts.total, counts.today, counts.errors) == (3, 2, 2)

    assert await log.delete_before(15.0) == 1
    assert await log.keep_newest(5) == 0
    assert await log.keep_newest(1) == 1
    assert [r.path for r in await log.page(5, 0)] == ["/v1/c"]
    assert (await log.counts(today=0.0)).errors == 1


# -- characters --------------------------------------------------------------------------------


async def test_character_row_has_every_column_of_the_schema(store: Store) -> None:
    names = [f.name for f in dataclasses.fields(CharacterRow)]
    assert sorted(names) == sorted([*await _columns(store, "characters"), "token_email"])


async def test_characters_round_trip(store: Store) -> None:
    token_id = await store.tokens.insert(
        {"access_token": "at", "email": "e@x.io", "created_at": 1.0}
    )
    chars = store.characters

    async def add(cameo: str, token: int | None, created: float) -> int:
        return await chars.add(
            token_id=token,
            cameo_id=cameo,
            character_id=f"ch_{cameo}",
            username=cameo,
            display_name=cameo.upper(),
            visibility="private",
            job_id=None,
            created_at=created,
        )

    a = await add("a", token_id, 1.0)
    b = await add("b", None, 2.0)
    c = await add("c", token_id, 3.0)
    row = await chars.get(a)
    assert isinstance(row, CharacterRow)
    assert (row.cameo_id, row.token_email, row.deleted, row.display_name) == ("a", "e@x.io", 0, "A")
    assert await chars.get(999) is None

    await chars.set_visibility(a, "public")
    await chars.mark_deleted(b)
    await chars.mark_deleted_upstream_id("ch_c")
    assert [r.id for r in await chars.find(None, include_deleted=False)] == [a]
    assert [r.id for r in await chars.find(None, include_deleted=True)] == [c, b, a]
    assert [r.id for r in await chars.find(token_id, include_deleted=True)] == [c, a]
    visible = await chars.get(a)
    assert visible is not None and visible.visibility == "public"

    assert await chars.nth_newest_deleted(1) == 3.0
    assert await chars.nth_newest_deleted(2) == 2.0
    assert await chars.nth_newest_deleted(3) is None
    # Only deleted records go, and only those before the cut.
    assert await chars.delete_deleted_before(2.5, batch=1) == 1
    assert [r.id for r in await chars.find(None, include_deleted=True)] == [c, a]


# -- jobs --------------------------------------------------------------------------------------


async def test_job_row_has_every_column_of_the_schema(store: Store) -> None:
    """A column added by a migration but not to JobRow would vanish from every job read."""
    names = [f.name for f in dataclasses.fields(JobRow)]
    assert sorted(names) == sorted([*await _columns(store, "jobs"), "token_email"])


async def test_jobs_round_trip_as_frozen_rows(store: Store) -> None:
    jobs = store.jobs
    row = JobRow(
        id="video_1",
        kind="video",
        model="sora2-landscape-10s",
        request='{"prompt": "a cat"}',
        status="queued",
        created_at=10.0,
        api="videos",
        prompt="a cat",
        phase="queued",
        updated_at=10.0,
    )
    await jobs.insert(row)
    stored = await jobs.get("video_1")
    assert stored == row  # every default arrives as the schema stores it
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.status = "failed"  # type: ignore[misc]
    assert JobRow.of(row.as_dict()) == row
    assert "token_email" not in row.columns()

    token_id = await store.tokens.insert(
        {"access_token": "at", "email": "e@x.io", "created_at": 1.0}
    )
    moved = {
        "phase": "submitted",
        "status": "in_progress",
        "token_id": token_id,
        "upstream_task_id": "task_1",
        "state": '{"task_id": "task_1"}',
        "cleanup": '[{"kind": "post", "id": "p1", "token_id": 1}]',
        "started_at": 11.0,
    }
    assert await jobs.update("video_1", moved) == 1
    assert await jobs.update("nope", {"stage": "x"}) == 0
    assert await jobs.get("video_1") == dataclasses.replace(row, **moved)  # type: ignore[arg-type]
    joined = await jobs.with_email("video_1")
    assert joined is not None and joined.token_email == "e@x.io"

    await _job(store, "img_1", "completed", 20.0, kind="image", cleanup="[]")
    await _job(store, "char_1", "completed", 30.0, kind="character", upstream_task_id="task_2")
    await _job(store, "video_2", "failed", 40.0)
    await _job(store, "video_3", "completed", 40.0)  # the same instant: the id orders them
    char = await jobs.get_of_kind("char_1", "character")
    assert char is not None and char.kind == "character"
    assert await jobs.get_of_kind("img_1", "character") is None
    assert await jobs.get("nope") is None
    assert await jobs.owned_task_ids(["task_1", "task_2", "task_9"]) == {"task_1", "task_2"}
    assert await jobs.owned_task_ids([]) == set()

    async def ids(**kw: object) -> list[str]:
        args: dict[str, object] = {"statuses": None, "anchor": None, "order": "desc", "limit": 10}
        return [r.id for r in await jobs.of_kind("video", **{**args, **kw})]  # type: ignore[arg-type]

    assert await ids() == ["video_3", "video_2", "video_1"]
    assert await ids(order="asc") == ["video_1", "video_2", "video_3"]
    assert await ids(limit=1, anchor=(40.0, "video_3")) == ["video_2"]
    assert await ids(order="asc", anchor=(40.0, "video_2")) == ["video_3"]
    assert await ids(statuses=("completed", "failed")) == ["video_3", "video_2"]
    assert [r.id for r in await jobs.running()] == ["video_1"]
    assert sorted(r.id for r in await jobs.ended_with_cleanup()) == ["img_1"]

    assert await jobs.delete("video_2") == 1
    assert await jobs.delete("video_2") == 0
    assert await jobs.get("video_2") is None
    assert await jobs.total() == 4


async def test_a_column_job_row_does_not_know_is_left_out(tmp_path: Path) -> None:
    """A newer schema (another branch's migration) must not break reading jobs."""
    s = await Store.open(
        tmp_path / "n.db", migrations=(*MIGRATIONS, "ALTER TABLE jobs ADD COLUMN x TEXT")
    )
    try:
        await _job(s, "video_1", "queued", 1.0, x="y")
        row = await s.jobs.get("video_1")
        assert row is not None and row.id == "video_1"
        assert "x" not in row.as_dict()
    finally:
        await s.close()


# -- jobs as the stats, the panel and retention read them ------------------------------------


async def test_job_counts_and_pages(store: Store) -> None:
    token_id = await store.tokens.insert(
        {"access_token": "at", "email": "e@x.io", "created_at": 1.0}
    )
    await _job(store, "j1", "completed", 1.0, token_id=token_id)
    await _job(store, "j2", "completed", 5.0)
    await _job(store, "j3", "queued", 2.0)
    await _job(store, "j4", "failed", 6.0, kind="image")
    counts = {(c.status, c.kind): (c.n, c.today) for c in await store.stats.job_counts(today=4.0)}
    assert counts == {
        ("completed", "video"): (2, 1),
        ("queued", "video"): (1, 0),
        ("failed", "image"): (1, 1),
    }

    active = ("queued", "in_progress")
    jobs = store.jobs
    assert [r.id for r in await jobs.page(None, None, 10, 0, active)] == [
        "j3",
        "j4",
        "j2",
        "j1",
    ]
    assert [r.id for r in await jobs.page(None, None, 2, 1, active)] == ["j4", "j2"]
    assert [r.id for r in await jobs.page("active", None, 10, 0, active)] == ["j3"]
    assert [r.id for r in await jobs.page("completed", "video", 10, 0, active)] == ["j2", "j1"]
    assert [r.id for r in await jobs.page(None, "image", 10, 0, active)] == ["j4"]
    one = await jobs.with_email("j1")
    assert one is not None and one.token_email == "e@x.io"
    assert await jobs.with_email("nope") is None
    assert await jobs.total() == 4
    assert await jobs.nth_newest(2) == 5.0
    assert await jobs.nth_newest(9) is None


async def test_delete_finished_keeps_running_and_recent_jobs(store: Store) -> None:
    await _job(store, "old_done", "completed", 1.0, completed_at=2.0)
    await _job(store, "old_running", "in_progress", 1.0)
    await _job(store, "old_just_done", "failed", 1.0, completed_at=50.0)
    await _job(store, "new_done", "completed", 30.0, completed_at=31.0)
    forgotten: list[str] = []
    final = ("completed", "failed", "cancelled")
    n = await store.jobs.delete_finished(10.0, 40.0, final, 1, forgotten.append)
    assert (n, forgotten) == (1, ["old_done"])
    left = [r.id for r in await store.jobs.page(None, None, 10, 0, ("in_progress",))]
    assert sorted(left) == ["new_done", "old_just_done", "old_running"]


# -- no SQL outside the store ------------------------------------------------------------------

_SKIPPED_DIRS = ("store", "simulator", "benchmarks")
_SQL_CALLS = {
    "execute",
    "executemany",
    "fetchone",
    "fetchall",
    "insert",
    "update",
    "delete_batched",
}
_SQL_TEXT = re.compile(r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s)")


def _store_like(node: ast.expr) -> bool:
    """`store`, `self._store`, `engine.store`...: the Store itself, not one of its repositories."""
    if isinstance(node, ast.Name):
        return node.id in ("store", "_store")
    return isinstance(node, ast.Attribute) and node.attr in ("store", "_store")


def sql_sites(source: str) -> list[str]:
    """Where `source` runs SQL through the store's raw helpers or holds an SQL statement."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _SQL_CALLS
            and _store_like(node.func.value)
        ):
            found.append((node.lineno, f".{node.func.attr}("))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _SQL_TEXT.match(node.value):
                found.append((node.lineno, repr(node.value[:40])))
    return [f"line {n}: {what}" for n, what in sorted(found)]


def test_the_scan_finds_sql_call_sites() -> None:
    src = (
        "async def f(self, store, engine):\n"
        "    await store.fetchone('x')\n"
        "    await self._store.insert('tokens', {})\n"
        "    await engine.store.update('jobs', 'id', 1, {})\n"
        "    q = 'DELETE FROM tokens WHERE id = ?'\n"
        "    await self._store.tokens.insert({})\n"  # a repository: fine
        "    d.update(x)\n"  # not the store: fine
    )
    assert [s.split(":")[0] for s in sql_sites(src)] == ["line 2", "line 3", "line 4", "line 5"]


def test_no_sql_outside_the_store() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.split("/")[0] in _SKIPPED_DIRS:
            continue
        sites = sql_sites(path.read_text(encoding="utf-8"))
        if sites:
            offenders[rel] = sites
    assert offenders == {}, "SQL belongs in a repository under sora2api/store/"
