"""Bounded growth and the polled routes: retention of jobs, characters and request-log rows,
indexes behind the stats and job lists, and the ready answers of finished jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.reqlog import REQLOG
from sora2api.retention import RETENTION
from sora2api.store import Store
from sora2api.store.migrations import MIGRATIONS

from .conftest import KEY, Sim
from .helpers import add_token
from .test_admin import PASSWORD, login

MakeClient = Callable[..., Awaitable[TestClient]]
DAY = 86400.0
# The tables that grow, and their aliases in the queries.
_BIG = {"jobs", "j", "request_logs", "l", "characters", "c"}


async def _started(make_client: MakeClient, **sections: dict[str, Any]) -> TestClient:
    """The app once its start-up retention pass is over, so a test's rows meet only its own."""
    client = await make_client(**sections)
    async with asyncio.timeout(10):
        await client.app[RETENTION].passed.wait()
    return client


async def _add_job(
    client: TestClient, job_id: str, status: str, created: float, kind: str = "video"
) -> None:
    await client.app[keys.STORE].insert(
        "jobs",
        {
            "id": job_id,
            "kind": kind,
            "model": "sora-2",
            "request": "{}",
            "status": status,
            "created_at": created,
            "updated_at": created,
        },
    )


async def _job_ids(client: TestClient) -> set[str]:
    rows = await client.app[keys.STORE].fetchall("SELECT id FROM jobs")
    return {r["id"] for r in rows}


async def _finished_video(client: TestClient, sim: Sim, prompt: str = "a fox") -> dict[str, Any]:
    """Create a video through POST /v1/videos and poll it until it is completed."""
    resp = await client.post("/v1/videos", json={"model": "sora-2", "prompt": prompt}, headers=KEY)
    assert resp.status == 200, await resp.text()
    video_id = (await resp.json())["id"]
    async with asyncio.timeout(30):
        while True:
            body = await (await client.get(f"/v1/videos/{video_id}", headers=KEY)).json()
            if body["status"] in ("completed", "failed"):
                assert body["status"] == "completed", body
                return dict(body)
            await asyncio.sleep(0.03)


# -- retention ---------------------------------------------------------------------------------


async def test_jobs_pruned_by_age_and_count_but_never_while_running(
    make_client: MakeClient,
) -> None:
    client = await _started(make_client, storage={"job_max_rows": 4, "job_max_days": 10})
    now = time.time()
    # Old: two finished jobs go, the old running ones stay whatever their age.
    await _add_job(client, "video_old_done", "completed", now - 20 * DAY)
    await _add_job(client, "video_old_failed", "failed", now - 11 * DAY)
    await _add_job(client, "video_old_queued", "queued", now - 30 * DAY)
    await _add_job(client, "video_old_running", "in_progress", now - 30 * DAY)
    # Recent: six more; only the newest four jobs overall survive the count bound.
    for n in range(6):
        status = "cancelled" if n % 2 else "completed"
        await _add_job(client, f"video_new_{n}", status, now - 2 * DAY - n)
    # Beyond both bounds but finished a moment ago: its client still gets to collect it.
    await _add_job(client, "video_just_finished", "completed", now - 30 * DAY)
    await client.app[keys.STORE].update(
        "jobs", "id", "video_just_finished", {"completed_at": now - 60}
    )
    deleted = await client.app[RETENTION].prune(now)
    assert deleted["jobs"] == 4  # the 2 old finished + new_4 and new_5
    assert await _job_ids(client) == {
        "video_old_queued",
        "video_old_running",
        "video_just_finished",
        "video_new_0",
        "video_new_1",
        "video_new_2",
        "video_new_3",
    }
    # A second pass finds nothing more to do.
    assert (await client.app[RETENTION].prune(now))["jobs"] == 0


async def test_zero_means_no_job_limit(make_client: MakeClient) -> None:
    client = await _started(make_client, storage={"job_max_rows": 0, "job_max_days": 0})
    now = time.time()
    for n in range(5):
        await _add_job(client, f"video_{n}", "completed", now - 400 * DAY - n)
    assert (await client.app[RETENTION].prune(now))["jobs"] == 0
    assert len(await _job_ids(client)) == 5


async def test_only_deleted_characters_are_pruned(make_client: MakeClient) -> None:
    client = await _started(make_client, storage={"character_max_rows": 2, "character_max_days": 5})
    store = client.app[keys.STORE]
    now = time.time()
    rows = [
        ("live_old", 0, now - 100 * DAY),
        ("gone_old", 1, now - 6 * DAY),
        ("gone_1", 1, now - 3),
        ("gone_2", 1, now - 2),
        ("gone_3", 1, now - 1),
        ("live_new", 0, now),
    ]
    for cameo, deleted, created in rows:
        await store.insert(
            "characters", {"cameo_id": cameo, "deleted": deleted, "created_at": created}
        )
    out = await client.app[RETENTION].prune(now)
    assert out["characters"] == 2
    left = await store.fetchall("SELECT cameo_id FROM characters ORDER BY id")
    assert [r["cameo_id"] for r in left] == ["live_old", "gone_2", "gone_3", "live_new"]


async def test_request_log_pruned_in_batches_by_the_retention_pass(
    make_client: MakeClient,
) -> None:
    client = await _started(make_client, storage={"log_max_rows": 2500, "log_max_days": 1})
    store = client.app[keys.STORE]
    now = time.time()
    # More rows than one DELETE batch on either bound.
    await store.executemany(
        "INSERT INTO request_logs (ts, method, path, status, duration_ms) VALUES (?, 'GET', ?, 200, 1)",
        [(now - 2 * DAY, "/v1/old") for _ in range(4500)]
        + [(now - n / 1000, "/v1/new") for n in range(6000, 0, -1)],
    )
    out = await client.app[RETENTION].prune(now)
    assert out["request_logs"] == 4500 + 3500
    rows = await store.fetchall("SELECT path, COUNT(*) AS n FROM request_logs GROUP BY path")
    assert rows == [{"path": "/v1/new", "n": 2500}]
    listed = await client.app[REQLOG].list(1, 0)
    assert listed["total"] == 2500


async def test_retention_runs_in_the_background_at_start(make_client: MakeClient) -> None:
    await _started(make_client)
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "sora2api.retention"]
    assert len(tasks) == 1 and not tasks[0].done()


# -- indexes -----------------------------------------------------------------------------------


async def test_stats_and_job_lists_use_indexes(make_client: MakeClient, sim: Sim) -> None:
    """Every statement behind /api/stats, /api/jobs, GET /v1/videos and /api/characters reads
    the jobs, request_logs and characters tables through an index, never a full table scan."""
    client = await _started(make_client, auth={"admin_password": PASSWORD})
    session = await login(client)
    now = time.time()
    for n in range(30):
        await _add_job(client, f"video_{n:02d}", ("completed", "failed", "queued")[n % 3], now - n)
    store = client.app[keys.STORE]
    seen: list[str] = []
    await store._conn.set_trace_callback(seen.append)  # every statement, parameters inlined
    paths = [
        "/api/stats",
        "/api/jobs",
        "/api/jobs?offset=12&limit=5",
        "/api/jobs?status=active",
        "/api/jobs?status=failed",
        "/api/jobs?kind=video",
        "/api/jobs?kind=image&status=completed",
        "/api/characters",
        "/api/characters?token_id=1",
    ]
    for path in paths:
        resp = await client.get(path, headers=session)
        assert resp.status == 200, (path, await resp.text())
    page = await (await client.get("/v1/videos?limit=4", headers=KEY)).json()
    after = page["last_id"]
    resp = await client.get(f"/v1/videos?limit=4&after={after}", headers=KEY)
    assert resp.status == 200
    await store._conn.set_trace_callback(None)

    queries = [
        q
        for q in dict.fromkeys(seen)
        if q.lstrip().upper().startswith("SELECT")
        and any(t in q for t in ("FROM jobs", "FROM request_logs", "FROM characters"))
    ]
    assert len(queries) >= 8, queries
    for sql in queries:
        plan = await store.fetchall("EXPLAIN QUERY PLAN " + sql)
        steps = [str(r["detail"]) for r in plan]
        # A scan of a big table (or its alias) must walk an index; the one-row and few-row
        # count tables kept by triggers are read whole.
        scans = [s for s in steps if s.split()[:2][-1] in _BIG and s.startswith("SCAN")]
        assert all("INDEX" in s for s in scans), (sql, steps)
    # The admin list still shows running jobs first, then the rest, newest first.
    body = await (await client.get("/api/jobs?limit=50", headers=session)).json()
    statuses = [j["status"] for j in body["jobs"]]
    assert statuses == ["queued"] * 10 + [s for s in statuses if s != "queued"]
    created = [j["created_at"] for j in body["jobs"]]
    assert created[:10] == sorted(created[:10], reverse=True)
    assert created[10:] == sorted(created[10:], reverse=True)
    # Offsets run across the two parts without a gap or a repeat.
    pages = []
    for offset in range(0, 30, 7):
        resp = await client.get(f"/api/jobs?limit=7&offset={offset}", headers=session)
        pages += [j["id"] for j in (await resp.json())["jobs"]]
    assert pages == [j["id"] for j in body["jobs"]]


# -- the polled routes -------------------------------------------------------------------------


async def _until_ready(client: TestClient, path: str) -> None:
    """Poll until an answer comes from the ready view: the job's last writes may land just
    after a poll saw it finished (each write drops the ready answer). Bounded."""
    engine = client.app[keys.JOBS]
    async with asyncio.timeout(10):
        while True:
            hits = engine.views.hits
            await (await client.get(path, headers=KEY)).read()
            if engine.views.hits > hits:
                return
            await asyncio.sleep(0.01)


async def test_finished_video_answer_is_served_ready_and_follows_changes(
    make_client: MakeClient, sim: Sim
) -> None:
    sim.state.settings.video_seconds = 2
    client = await make_client(auth={"admin_password": PASSWORD})
    await add_token(client, sim.state.add_account())
    engine = client.app[keys.JOBS]
    done = await _finished_video(client, sim)
    video_id = done["id"]
    await client.app[REQLOG].flush()
    store = client.app[keys.STORE]
    path = f"/v1/videos/{video_id}"

    async def logged() -> dict[tuple[int, str | None], int]:
        """GETs of the video's path in the request log: (status, job id) -> calls."""
        await client.app[REQLOG].flush()
        rows = await store.fetchall(
            "SELECT status, job_id, SUM(count) AS n FROM request_logs"
            " WHERE method = 'GET' AND path = ? GROUP BY 1, 2",
            (path,),
        )
        return {(r["status"], r["job_id"]): r["n"] for r in rows}

    await _until_ready(client, path)
    before = await logged()
    hits = engine.views.hits
    first = await client.get(f"/v1/videos/{video_id}", headers=KEY)
    again = await client.get(f"/v1/videos/{video_id}", headers=KEY)
    assert engine.views.hits == hits + 2  # both answered from the ready view
    assert first.status == again.status == 200
    assert await first.read() == await again.read()
    assert again.headers["Content-Type"].startswith("application/json")
    assert "openai-poll-after-ms" not in again.headers
    assert (await again.json())["expires_at"] == done["expires_at"]
    # Still behind the key, and still a video: the image route does not serve it.
    assert (await client.get(f"/v1/videos/{video_id}")).status == 401
    assert (await client.get(f"/v1/images/{video_id}", headers=KEY)).status == 404

    # A changed media_ttl changes expires_at: the ready answer is rebuilt.
    session = await login(client)
    resp = await client.put(
        "/api/admin/settings", json={"values": {"storage.media_ttl": 7200}}, headers=session
    )
    assert resp.status == 200, await resp.text()
    moved = await (await client.get(f"/v1/videos/{video_id}", headers=KEY)).json()
    assert moved["expires_at"] == done["expires_at"] + 3600

    # Deleted: the next poll is a 404, not the kept answer.
    resp = await client.delete(f"/v1/videos/{video_id}", headers=KEY)
    assert resp.status == 200
    gone = await client.get(f"/v1/videos/{video_id}", headers=KEY)
    assert gone.status == 404 and (await gone.json())["error"]["param"] == "id"
    # Every poll is in the request log; the two ready answers as counted rows with the job id.
    after = await logged()
    assert after.get((200, video_id), 0) == before.get((200, video_id), 0) + 2
    assert after[(200, None)] == before[(200, None)] + 1  # the rebuilt answer
    assert after[(401, None)] == 1 and after[(404, None)] == 1
    ready_row = await store.fetchone(
        "SELECT key_hint, client FROM request_logs WHERE job_id = ? AND path = ?", (video_id, path)
    )
    assert ready_row is not None and ready_row["key_hint"].startswith("…")
    assert ready_row["client"] == "127.0.0.1"


async def test_pruned_video_is_gone_from_the_polled_route(
    make_client: MakeClient, sim: Sim
) -> None:
    sim.state.settings.video_seconds = 2
    client = await _started(make_client, storage={"job_max_days": 90, "job_max_rows": 0})
    await add_token(client, sim.state.add_account())
    done = await _finished_video(client, sim)
    assert (await client.get(f"/v1/videos/{done['id']}", headers=KEY)).status == 200
    # A running job older than any bound survives the same pass.
    sim.state.settings.video_seconds = 600
    resp = await client.post("/v1/videos", json={"model": "sora-2", "prompt": "slow"}, headers=KEY)
    running = (await resp.json())["id"]
    out = await client.app[RETENTION].prune(time.time() + 91 * DAY)
    assert out["jobs"] == 1
    assert (await client.get(f"/v1/videos/{done['id']}", headers=KEY)).status == 404
    listed = await (await client.get("/v1/videos", headers=KEY)).json()
    assert [v["id"] for v in listed["data"]] == [running]
    resp = await client.get(f"/v1/videos/{running}", headers=KEY)
    assert resp.status == 200 and (await resp.json())["status"] in ("queued", "in_progress")


async def test_row_counts_follow_every_change_and_the_upgrade(tmp_path: Path) -> None:
    """The stats read job_counts: it must equal a real count after an upgrade and any change."""
    path = tmp_path / "old.db"
    old = await Store.open(path, migrations=MIGRATIONS[:3])
    for n, (status, kind) in enumerate([("completed", "video")] * 3 + [("failed", "image")] * 2):
        await old.insert(
            "jobs",
            {
                "id": f"j{n}",
                "kind": kind,
                "model": "m",
                "request": "{}",
                "status": status,
                "created_at": float(n),
            },
        )
    await old.close()
    store = await Store.open(path)

    async def counts_match() -> None:
        kept = await store.fetchall(
            "SELECT status, kind, n FROM job_counts WHERE n > 0 ORDER BY 1, 2"
        )
        real = await store.fetchall(
            "SELECT status, kind, COUNT(*) AS n FROM jobs GROUP BY 1, 2 ORDER BY 1, 2"
        )
        assert kept == real

    try:
        await counts_match()
        await store.insert(
            "jobs",
            {
                "id": "j9",
                "kind": "video",
                "model": "m",
                "request": "{}",
                "status": "queued",
                "created_at": 9.0,
            },
        )
        await counts_match()
        await store.update("jobs", "id", "j9", {"status": "in_progress", "progress": 5})
        await store.update("jobs", "id", "j9", {"progress": 50})  # not a status change
        await store.update("jobs", "id", "j9", {"status": "completed"})
        await store.update("jobs", "id", "j3", {"kind": "video"})
        await counts_match()
        await store.execute("DELETE FROM jobs WHERE id IN ('j0', 'j4')")
        await counts_match()
        # The request log's row count is kept the same way.
        for status in (200, 404, 200, 502):
            await store.execute(
                "INSERT INTO request_logs (ts, method, path, status, duration_ms)"
                " VALUES (1, 'GET', '/v1/x', ?, 1)",
                (status,),
            )
        kept = await store.fetchone("SELECT n, errors FROM request_log_count")
        assert kept == {"n": 4, "errors": 2}
        await store.execute("DELETE FROM request_logs WHERE status IN (404, 502)")
        kept = await store.fetchone("SELECT n, errors FROM request_log_count")
        assert kept == {"n": 2, "errors": 0}
    finally:
        await store.close()


async def test_finished_image_url_answer_is_served_ready(make_client: MakeClient, sim: Sim) -> None:
    sim.state.settings.image_seconds = 1
    client = await make_client()
    await add_token(client, sim.state.add_account())
    engine = client.app[keys.JOBS]
    resp = await client.post(
        "/v1/images/generations", json={"model": "sora-image", "prompt": "a kite"}, headers=KEY
    )
    assert resp.status == 200, await resp.text()
    job_id = (await resp.json())["job_id"]
    await _until_ready(client, f"/v1/images/{job_id}")
    built = await client.get(f"/v1/images/{job_id}", headers=KEY)
    hits = engine.views.hits
    ready = await client.get(f"/v1/images/{job_id}", headers=KEY)
    assert engine.views.hits == hits + 1
    assert built.status == ready.status == 200
    assert await built.read() == await ready.read()
    body = await ready.json()
    assert body["status"] == "completed" and body["data"][0]["url"].startswith("http")
    # base64 answers are built each time (megabytes each), and a video route does not serve it.
    b64 = await client.get(f"/v1/images/{job_id}?response_format=b64_json", headers=KEY)
    assert b64.status == 200 and (await b64.json())["data"][0]["b64_json"]
    assert engine.views.hits == hits + 1
    assert (await client.get(f"/v1/videos/{job_id}", headers=KEY)).status == 404
