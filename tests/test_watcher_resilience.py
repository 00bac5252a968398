"""The token watcher under upstream trouble: transient poll errors, bursts of finished tasks, and
settings changed while it sleeps. End to end: the real app, the simulator as the upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.providers.sora.client import Page
from sora2api.providers.sora.watcher import MAX_PAGES, _find, _timestamp, _Tracked
from sora2api.simulator import Account

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat, final_result, read_sse, reasoning

PENDING = "/backend/nf/pending*"
DRAFTS = "/backend/project_y/profile/drafts"
RECENT = "/backend/v2/recent_tasks"


def _creates(sim: Sim, path: str) -> int:
    return sum(1 for e in sim.state.journal if e.method == "POST" and e.path == path)


async def _until(check: Any, within: float = 30.0) -> None:
    """Wait (bounded) until check() is true; the machine may be loaded, so no fixed sleeps."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def _token_status(client: TestClient, token_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/tokens/{token_id}", headers=KEY)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def _video_stream(client: TestClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "a fox", stream=True), headers=KEY
    )
    assert resp.status == 200
    frames, _ = await read_sse(resp)
    return frames, reasoning(frames)


def _delays(steps: list[dict[str, Any]]) -> list[str]:
    return [s["message"] for s in steps if (s.get("details") or {}).get("poll_delayed") is True]


@pytest.fixture
async def one(make_client: Any, sim: Sim) -> tuple[TestClient, Account, int]:
    """The app polling every 0.01 s, with one simulator account as its only token."""
    client = await make_client(upstream={"poll_interval": 0.05})
    sim.state.settings.video_seconds = 30
    account = sim.state.add_account()
    token_id = await add_token(client, account)
    sim.state.clear_journal()
    return client, account, token_id


# -- item 2: transient poll errors delay a job, they never fail it ------------------------------


async def test_transient_poll_errors_back_off_and_the_job_completes(
    one: tuple[TestClient, Account, int], sim: Sim
) -> None:
    client, account, token_id = one
    # Six failed polls in a row (today five fail every job on the token), each kind once.
    kinds = ["429", "403_cloudflare", "500", "502_html", "heavy_load", "503_empty"]
    sim.state.inject("GET", PENDING, "429", email=account.email, retry_after=1)
    for kind in kinds[1:]:
        sim.state.inject("GET", PENDING, kind, email=account.email)

    frames, steps = await _video_stream(client)

    result = final_result(frames)
    assert result["type"] == "video" and "/tmp/" in result["url"], result
    delays = _delays(steps)
    assert delays[0] == "Status polling delayed: upstream 429 rate limited; retrying in 1 s"
    assert "upstream 403 Cloudflare challenge" in delays[1]
    assert "upstream 500 server error" in delays[2]
    assert "upstream 502 server error" in delays[3]
    assert "upstream 429 heavy load" in delays[4]
    assert "upstream 503 server error" in delays[5]
    assert len(delays) == 6 and all(
        s["status"] == "processing" for s in steps if s["message"] in delays
    )
    # The simulator answered six faulted polls, then good ones; the create was sent once.
    faulted = [e.fault for e in sim.state.journal if e.path.startswith("/backend/nf/pending")]
    assert [f for f in faulted if f] == kinds and faulted[-1] is None
    assert _creates(sim, "/backend/nf/create") == 1
    assert (await _token_status(client, token_id))["status"] == "active"


async def test_error_count_does_not_carry_over_to_the_next_job(
    one: tuple[TestClient, Account, int], sim: Sim
) -> None:
    client, account, _ = one
    for _ in range(4):
        sim.state.inject("GET", PENDING, "500", email=account.email)
    frames, _ = await _video_stream(client)
    assert final_result(frames)["type"] == "video"
    # One more bad spell on the same token: a success in between reset the count.
    for _ in range(2):
        sim.state.inject("GET", PENDING, "429", email=account.email)
    frames, steps = await _video_stream(client)
    assert final_result(frames)["type"] == "video"
    assert len(_delays(steps)) == 2
    assert _creates(sim, "/backend/nf/create") == 2


async def test_token_verdict_on_a_poll_ends_the_jobs_at_once(
    one: tuple[TestClient, Account, int], sim: Sim
) -> None:
    client, account, token_id = one
    sim.state.inject("GET", PENDING, "401_invalidated", email=account.email)
    frames, steps = await _video_stream(client)
    error = next(f["error"] for f in frames if "error" in f)
    assert "Token invalid" in error["message"] and "pending" in error["message"]
    assert not _delays(steps)
    assert (await _token_status(client, token_id))["status"] == "invalid"


async def test_polls_failing_forever_end_at_the_jobs_own_timeout(
    make_client: Any, sim: Sim
) -> None:
    client = await make_client(upstream={"poll_interval": 0.05, "video_timeout": 2.0})
    account = sim.state.add_account()
    token_id = await add_token(client, account)
    sim.state.inject("GET", PENDING, "502_html", email=account.email, times=None)
    frames, steps = await _video_stream(client)
    error = next(f["error"] for f in frames if "error" in f)
    assert "2 s limit" in error["message"] and "502" in error["message"], error
    assert _delays(steps)
    assert (await _token_status(client, token_id))["status"] == "active"
    assert _creates(sim, "/backend/nf/create") == 1


# -- item 3: a finished task is found however many finish at once -------------------------------


async def test_list_endpoints_page_by_cursor(sim: Sim) -> None:
    account = sim.state.add_account(max_concurrent_videos=50, quota=50)
    base = sim.url + "/backend"
    headers = {
        "Authorization": f"Bearer {account.access_token}",
        "openai-sentinel-token": "AbCdEfGhIj12345",
    }
    async with aiohttp.ClientSession(headers=headers) as http:

        async def get(path: str, **query: Any) -> Any:
            async with http.get(base + path, params=query) as resp:
                return resp.status, await resp.json()

        images = []
        for i in range(23):
            async with http.post(base + "/video_gen", json=_image_body(f"p{i}")) as resp:
                images.append((await resp.json())["id"])
        _, first = await get("/v2/recent_tasks", limit=20)
        _, second = await get("/v2/recent_tasks", limit=20, cursor=first["cursor"])
        assert [t["id"] for t in first["task_responses"] + second["task_responses"]] == images[::-1]
        assert second["cursor"] is None

        videos = []
        for i in range(17):
            async with http.post(base + "/nf/create", json=_video_body(f"v{i}")) as resp:
                videos.append((await resp.json())["id"])
        sim.state.advance(100)  # past every task, short of the AT's expiry
        seen, cursor, pages = [], None, 0
        while True:
            status, page = await get(DRAFTS.removeprefix("/backend"), limit=5, cursor=cursor or "")
            assert status == 200
            seen += [d["task_id"] for d in page["items"]]
            pages += 1
            cursor = page["cursor"]
            if cursor is None:
                break
        assert seen == videos[::-1] and pages == 4
        # A cursor is opaque, URL-safe and belongs to its list.
        assert first["cursor"].replace("-", "").replace("_", "").isalnum()
        assert (await get(DRAFTS.removeprefix("/backend"), cursor=first["cursor"]))[0] == 400
        assert (await get("/v2/recent_tasks", cursor="%%%"))[0] == 400


def _image_body(prompt: str) -> dict[str, Any]:
    return {
        "type": "image_gen",
        "operation": "simple_compose",
        "prompt": prompt,
        "width": 360,
        "height": 360,
        "n_variants": 1,
        "n_frames": 1,
        "inpaint_items": [],
    }


def _video_body(prompt: str) -> dict[str, Any]:
    return {
        "kind": "video",
        "prompt": prompt,
        "orientation": "landscape",
        "size": "small",
        "n_frames": 300,
        "model": "sy_8",
        "inpaint_items": [],
    }


async def _burst_token(make_client: Any, sim: Sim, count: int) -> TestClient:
    """The app with one token that takes `count` jobs at once; nothing finishes on its own."""
    client = await make_client(upstream={"poll_interval": 0.05})
    sim.state.settings.image_seconds = 100_000  # 1,000 s scaled: only the clock jump ends them
    sim.state.settings.video_seconds = 100_000
    account = sim.state.add_account(max_concurrent_videos=count, quota=count)
    await add_token(client, account, image_concurrency=0, video_concurrency=0)
    sim.state.clear_journal()
    return client


def _finish_all(sim: Sim) -> None:
    sim.state.advance(1_500)  # past every task, short of the AT's expiry (3,600 s)


async def test_a_burst_of_finished_videos_is_found_past_the_first_drafts_page(
    make_client: Any, sim: Sim
) -> None:
    count = 110  # the drafts lookup asked for at most 100, and never paged
    client = await _burst_token(make_client, sim, count)
    ids = []
    for i in range(count):  # the Videos API answers at once: no connection waits on a result
        resp = await client.post("/v1/videos", json={"prompt": f"burst {i}"}, headers=KEY)
        assert resp.status == 200, await resp.text()
        ids.append((await resp.json())["id"])
    await _until(lambda: _creates(sim, "/backend/nf/create") == count, within=60)
    _finish_all(sim)
    statuses: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(120):
        while len(statuses) < count:
            for video_id in ids:
                if video_id in statuses:
                    continue
                body = await (await client.get(f"/v1/videos/{video_id}", headers=KEY)).json()
                if body["status"] in ("completed", "failed"):
                    statuses[video_id] = body
            await asyncio.sleep(0.05)
    failed = [b for b in statuses.values() if b["status"] != "completed"]
    assert not failed, failed[:3]
    assert _creates(sim, "/backend/nf/create") == count
    drafts = [e for e in sim.state.journal if e.path == DRAFTS]
    assert any(e.query.get("cursor") for e in drafts), "a later drafts page was read"
    assert all(int(e.query["limit"]) <= 100 for e in drafts)
    assert sum(t.busy["video"] for t in client.app[keys.POOL].tokens()) == 0


async def test_a_burst_of_finished_images_is_found_past_the_first_recent_tasks_page(
    make_client: Any, sim: Sim
) -> None:
    count = 45  # recent_tasks shows 20 at a time
    client = await _burst_token(make_client, sim, count)

    async def one(i: int) -> tuple[int, Any]:
        body = chat("sora-image", f"burst {i}")
        resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
        return resp.status, await resp.json()

    jobs = [asyncio.create_task(one(i)) for i in range(count)]
    await _until(lambda: _creates(sim, "/backend/video_gen") == count, within=60)
    _finish_all(sim)
    async with asyncio.timeout(120):
        answers = await asyncio.gather(*jobs)
    failed = [a for a in answers if a[0] != 200]
    assert not failed, failed[:3]
    assert all("/tmp/" in a[1]["choices"][0]["message"]["content"] for a in answers)
    assert _creates(sim, "/backend/video_gen") == count
    assert any(e.path == RECENT and e.query.get("cursor") for e in sim.state.journal)


# -- item 13: a changed poll interval reaches a sleeping watcher at once ------------------------


async def test_a_changed_poll_interval_wakes_the_sleeping_watcher(
    one: tuple[TestClient, Account, int], sim: Sim
) -> None:
    client, account, _ = one
    admin = await admin_headers(client)

    async def interval(value: float) -> None:
        resp = await client.put(
            "/api/admin/settings", json={"values": {"upstream.poll_interval": value}}, headers=admin
        )
        assert resp.status == 200, await resp.text()

    # Values a range check should accept: the watcher sleeps 60 s (twice 30 s below 30 %).
    await interval(30.0)
    job = asyncio.create_task(_video_stream(client))
    store = client.app[keys.STORE]
    async with asyncio.timeout(30):  # the job is in its watcher's hands (phase "polling")
        while True:
            rows = await store.fetchall("SELECT phase FROM jobs")
            if any(r["phase"] == "polling" for r in rows):
                break
            await asyncio.sleep(0.02)
    assert _creates(sim, "/backend/nf/create") == 1
    sim.state.advance(1_000)  # the task is finished upstream; only a poll can tell
    await asyncio.sleep(0)
    assert sim.state.polls(account.email, "/backend/nf/pending*") == 0
    await interval(1.0)
    async with asyncio.timeout(20):  # far less than the 60 s the watcher went to sleep for
        frames, _ = await job
    assert final_result(frames)["type"] == "video"


# -- the paging rule itself (a pure function over pages) ----------------------------------------


def _pages(count: int, *, newest: float, step: float) -> list[Page]:
    """`count` pages of 10 drafts each, newest first, `step` seconds apart."""
    pages = []
    for p in range(count):
        items = [
            {"task_id": f"t{p * 10 + i}", "created_at": newest - (p * 10 + i) * step}
            for i in range(10)
        ]
        pages.append(Page(items, f"c{p + 1}" if p + 1 < count else None))
    return pages


async def _read(pages: list[Page], wanted: list[str], since: float | None) -> tuple[set[str], int]:
    reads: list[str | None] = []

    async def fetch(cursor: str | None) -> Page:
        reads.append(cursor)
        return pages[0 if cursor is None else int(cursor[1:])]

    tracked = [_Tracked(task_id, "video", since) for task_id in wanted]
    return set(await _find(fetch, tracked, "task_id")), len(reads)


async def test_paging_stops_when_found_at_the_end_or_past_the_oldest_job() -> None:
    now = 1_800_000_000.0
    pages = _pages(30, newest=now, step=60.0)  # 10 minutes of drafts per page
    assert await _read(pages, ["t3"], now - 100) == ({"t3"}, 1)  # found on the first page
    assert await _read(pages, ["t3", "t25"], now - 3000) == ({"t3", "t25"}, 3)
    # Not there: stop once a page ends older than the oldest job (less the clock-skew margin).
    assert await _read(pages, ["gone"], now - 1200) == (set(), 4)  # 4th page ends 39 min back
    # No start time known: only the page bound stops it.
    assert await _read(pages, ["gone"], None) == (set(), MAX_PAGES)
    assert await _read(_pages(2, newest=now, step=1.0), ["gone"], None) == (set(), 2)
    # ISO strings and milliseconds read as the same instant.
    assert _timestamp("2027-01-15T08:00:00Z") == _timestamp(1_800_000_000_000) == now
