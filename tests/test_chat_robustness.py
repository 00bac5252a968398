"""Bad input, restarts, disconnect storms and upstream misbehaviour on the generation path."""

from __future__ import annotations

import asyncio
import base64
import random
from pathlib import Path

import orjson
import pytest

from sora2api import keys
from sora2api.app import create_app

from .conftest import KEY, Sim, config_for
from .helpers import add_token, chat, data_url, final_result, read_sse, reasoning


async def _job_count(client) -> int:
    row = await client.app[keys.STORE].fetchone("SELECT COUNT(*) AS n FROM jobs")
    return int(row["n"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, "Unknown model 'nope'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "'model' is required"),
        ({"model": "sora-image", "messages": []}, "'messages' must be a non-empty array"),
        (
            {"model": "sora-image", "messages": [{"role": "user", "content": ""}]},
            "no text, image or video",
        ),
        (
            {"model": "sora-image", "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "unsupported type 'audio'",
        ),
        (
            chat(
                "sora-image",
                [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
                ],
            ),
            "invalid base64",
        ),
        (
            chat(
                "sora-image",
                [
                    {"type": "text", "text": "x"},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/png;base64,"
                            + base64.b64encode(b"hello world").decode()
                        },
                    },
                ],
            ),
            "not a PNG, JPEG, GIF or WebP image",
        ),
        (
            chat(
                "sora-image",
                [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/cat.png"}},
                ],
            ),
            "127.0.0.1",
        ),
        (
            chat(
                "sora-image",
                [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
                ],
            ),
            "http",
        ),
        (chat("sora-video-10s", "[3s]too short"), "each shot must last"),
        (chat("sora-video-10s", "intro [5s] [10s]"), "no valid shot"),
        (chat("sora-video-10s", "x", style_id="glitter"), "Unknown style 'glitter'"),
        (chat("sora-video-10s", "x", remix_target_id="s_123"), "remix_target_id"),
        (chat("sora-video-10s", "x", stream="yes"), "'stream' must be true or false"),
        (chat("sora-image", "x", video="data:video/mp4;base64,AAAA"), "Image models take no video"),
        (chat("sora-video-10s", "x", character_options={"username": "a"}), "character_options"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_bad_input_is_a_named_400_and_writes_nothing(
    client, sim: Sim, body, fragment: str
) -> None:
    await add_token(client, sim.state.add_account())
    resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 400, await resp.text()
    err = (await resp.json())["error"]
    assert fragment in err["message"]
    assert err["type"] == "invalid_request_error"
    assert await _job_count(client) == 0
    assert not sim.state.calls("POST", "/backend/*")


async def test_jpeg_input_is_labelled_jpeg(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    jpeg = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
    body = chat(
        "sora-image",
        [
            {"type": "text", "text": "x"},
            {"type": "image_url", "image_url": {"url": data_url(jpeg, "image/jpeg")}},
        ],
    )
    await client.post("/v1/chat/completions", json=body, headers=KEY)
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["content_type"] == "image/jpeg"
    assert upload.form["file_name"]["text"] == "image.jpeg"


async def test_draft_lag_is_not_a_violation(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    sim.state.scenario("success", target="video", draft_lag=3, draft_null_urls_polls=3)
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    assert final_result(frames)["type"] == "video"


async def test_video_failing_midway_reports_the_reason(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    sim.state.scenario("fail", target="video", message="render farm on fire")
    resp = await client.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    assert resp.status == 502
    assert "render farm on fire" in (await resp.json())["error"]["message"]


async def test_poll_errors_are_classified_not_swallowed(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 200
    acct = sim.state.add_account()
    await add_token(client, acct)
    sim.state.inject("GET", "/backend/nf/pending*", "401_invalidated", times=None)
    resp = await client.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    body = await resp.json()
    assert resp.status == 502, body
    assert "Token invalid" in body["error"]["message"] and "invalidated" in body["error"]["message"]
    row = await client.app[keys.STORE].fetchone("SELECT status, status_reason FROM tokens")
    assert row["status"] == "invalid" and "invalidated" in row["status_reason"]


async def test_token_expiring_at_create_moves_to_the_next_token(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    a, b = sim.state.add_account(), sim.state.add_account()
    id_a = await add_token(client, a)
    id_b = await add_token(client, b)
    sim.state.inject("POST", "/backend/video_gen", "401_expired", email=a.email, times=None)
    sim.state.inject("POST", "/backend/video_gen", "401_expired", email=b.email, times=1)
    # whichever token is tried first fails with 401; with both dead the reason names them
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    body = await resp.json()
    assert resp.status == 503, body
    assert "2 expired" in body["error"]["message"]
    statuses = {
        r["id"]: r["status"]
        for r in await client.app[keys.STORE].fetchall("SELECT id, status FROM tokens")
    }
    assert statuses == {id_a: "expired", id_b: "expired"}


async def test_create_timeout_is_not_resent(make_client, sim: Sim) -> None:
    client = await make_client(upstream={"request_timeout": 0.5})
    sim.state.settings.hang_seconds = 5
    a, b = sim.state.add_account(), sim.state.add_account()
    await add_token(client, a)
    await add_token(client, b)
    sim.state.inject("POST", "/backend/nf/create", "hang", times=None)
    resp = await client.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    assert resp.status == 504
    assert "did not answer in time" in (await resp.json())["error"]["message"]
    # the create may have reached Sora: sending it to a second account could spend quota twice
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1


async def test_fifty_parallel_jobs_with_random_disconnects(make_client, sim: Sim) -> None:
    client = await make_client(generation={"queue_timeout": 60.0})
    sim.state.settings.image_seconds = 10
    for _ in range(5):
        await add_token(client, sim.state.add_account(), image_concurrency=2)
    pool = client.app[keys.POOL]
    peak = 0

    async def one(i: int) -> str:
        nonlocal peak
        resp = await client.post(
            "/v1/chat/completions", json=chat("sora-image", f"cat {i}", stream=True), headers=KEY
        )
        first = await resp.content.readline()
        job_id = orjson.loads(first[6:])["job_id"]
        if random.random() < 0.5:
            await asyncio.sleep(random.random() * 0.3)
            resp.close()  # the client walks away mid-stream
        else:
            await resp.read()
        peak = max(peak, max(t.busy["image"] for t in pool.tokens()))
        return job_id

    random.seed(7)
    job_ids = await asyncio.gather(*(one(i) for i in range(50)))
    engine = client.app[keys.JOBS]
    for job_id in job_ids:
        run = engine.run_of(job_id)
        if run is not None:
            await asyncio.wait_for(run.done.wait(), 60)
    rows = await client.app[keys.STORE].fetchall("SELECT status FROM jobs")
    assert [r["status"] for r in rows] == ["completed"] * 50
    assert all(t.busy["image"] == 0 and t.busy["video"] == 0 for t in pool.tokens())
    assert peak <= 2  # the per-token limit held
    counts = [t.row["image_count"] for t in pool.tokens()]
    assert sum(counts) == 50 and min(counts) > 0  # work spread over every token


async def test_job_resumes_after_restart_without_resubmitting(
    sim: Sim, tmp_path: Path, aiohttp_client
) -> None:
    sim.state.settings.video_seconds = 300
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    await add_token(client, sim.state.add_account())
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    job_id = orjson.loads((await resp.content.readline())[6:])["job_id"]
    store = client.app[keys.STORE]
    for _ in range(200):
        row = await store.fetchone("SELECT upstream_task_id FROM jobs WHERE id = ?", (job_id,))
        if row and row["upstream_task_id"]:
            break
        await asyncio.sleep(0.05)
    resp.close()
    await client.close()  # the process goes away mid-job
    client2 = await aiohttp_client(create_app(config))
    engine = client2.app[keys.JOBS]
    run = engine.run_of(job_id)
    assert run is not None, "the job was not resumed"
    await asyncio.wait_for(run.done.wait(), 60)
    row = await engine.get(job_id)
    assert row.status == "completed", row
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1
    assert orjson.loads(row.result or "{}")["type"] == "video"


async def test_job_interrupted_before_submit_fails_with_reason(
    sim: Sim, tmp_path: Path, aiohttp_client
) -> None:
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    store = client.app[keys.STORE]
    await store.insert(
        "jobs",
        {
            "id": "video_" + "0" * 32,
            "kind": "video",
            "model": "sora-video-10s",
            "request": "{}",
            "status": "queued",
            "created_at": 1.0,
        },
    )
    await client.close()
    client2 = await aiohttp_client(create_app(config))
    run = client2.app[keys.JOBS].run_of("video_" + "0" * 32)
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 10)
    row = await client2.app[keys.JOBS].get("video_" + "0" * 32)
    assert row.status == "failed" and "not resubmitted" in row.error_message


async def test_caching_failure_is_a_clear_error(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.inject("GET", "/media/*", "500", times=None)
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    body = await resp.json()
    assert resp.status == 502, body
    assert "Caching failed" in body["error"]["message"]


async def test_shutdown_ends_open_streams_cleanly(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 300
    await add_token(client, sim.state.add_account())
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    job_id = orjson.loads((await resp.content.readline())[6:])["job_id"]
    await client.app.shutdown()  # what SIGTERM triggers first
    frames, _ = await read_sse(resp)
    err = [f for f in frames if "error" in f]
    assert err and err[0]["error"]["code"] == "server_restarting"
    assert f"/v1/videos/{job_id}" in err[0]["error"]["message"]


async def test_busy_pool_queues_fairly_and_the_stream_says_so(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 40
    await add_token(client, sim.state.add_account(), image_concurrency=1)
    first = await client.post(
        "/v1/chat/completions", json=chat("sora-image", "one", stream=True), headers=KEY
    )
    await first.content.readline()
    second = await client.post(
        "/v1/chat/completions", json=chat("sora-image", "two", stream=True), headers=KEY
    )
    frames2, _ = await read_sse(second)
    frames1, _ = await read_sse(first)
    queued = [s for s in reasoning(frames2) if (s.get("details") or {}).get("queued")]
    assert queued and "Queued" in queued[0]["message"] and queued[0]["details"]["position"] == 1
    assert final_result(frames1)["type"] == "image" and final_result(frames2)["type"] == "image"
    prompts = [c.json["prompt"] for c in sim.state.calls("POST", "/backend/video_gen")]
    assert prompts == ["one", "two"]  # the waiting job ran only after the first freed the slot


async def test_expired_token_at_create_hands_the_job_to_a_good_one(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 30
    a, b = sim.state.add_account(), sim.state.add_account()
    id_a = await add_token(client, a)
    id_b = await add_token(client, b)
    sim.state.inject("POST", "/backend/nf/create", "401_expired", email=a.email, times=None)
    for _ in range(2):  # round robin tries a at least once
        resp = await client.post(
            "/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY
        )
        assert resp.status == 200, await resp.text()
    rows = {r["id"]: r for r in await client.app[keys.STORE].fetchall("SELECT * FROM tokens")}
    assert rows[id_a]["status"] == "expired" and "expired" in rows[id_a]["status_reason"].lower()
    assert rows[id_b]["status"] == "active" and rows[id_b]["video_count"] == 2


async def test_token_expiring_mid_job_fails_that_job_with_the_reason(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 300
    acct = sim.state.add_account()
    await add_token(client, acct)
    sim.state.inject("GET", "/backend/nf/pending*", "401_expired", after=2, times=None)
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    err = [f for f in frames if "error" in f]
    assert err and "Token expired" in err[0]["error"]["message"]
    row = await client.app[keys.STORE].fetchone("SELECT status FROM tokens")
    assert row["status"] == "expired"
    # the task already spent quota upstream: it is not resubmitted elsewhere
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1


async def test_deleting_a_token_mid_job_fails_its_job_clearly(client, sim: Sim) -> None:
    sim.state.settings.video_seconds = 300
    token_id = await add_token(client, sim.state.add_account())
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    job_id = orjson.loads((await resp.content.readline())[6:])["job_id"]
    store = client.app[keys.STORE]
    for _ in range(100):
        row = await store.fetchone("SELECT upstream_task_id FROM jobs WHERE id = ?", (job_id,))
        if row and row["upstream_task_id"]:
            break
        await asyncio.sleep(0.05)
    assert (await client.delete(f"/api/tokens/{token_id}", headers=KEY)).status == 200
    frames, _ = await read_sse(resp)
    err = [f for f in frames if "error" in f]
    assert err and "was deleted while this job ran" in err[0]["error"]["message"]
    row = await client.app[keys.JOBS].get(job_id)
    assert row.status == "failed"


async def test_job_queued_for_a_token_at_restart_runs_after_it(
    sim: Sim, tmp_path: Path, aiohttp_client
) -> None:
    sim.state.settings.video_seconds = 200
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    await add_token(client, sim.state.add_account(), video_concurrency=1)
    first = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "first", stream=True), headers=KEY
    )
    first_id = orjson.loads((await first.content.readline())[6:])["job_id"]
    second = await client.post(
        "/v1/chat/completions",
        json=chat("sora-video-portrait-15s", "[5s]second shot [10s]third", stream=True),
        headers=KEY,
    )
    second_id = orjson.loads((await second.content.readline())[6:])["job_id"]
    store = client.app[keys.STORE]
    for _ in range(200):  # the first job polls upstream, the second waits for the slot
        row = await store.fetchone("SELECT upstream_task_id FROM jobs WHERE id = ?", (first_id,))
        if row and row["upstream_task_id"]:
            break
        await asyncio.sleep(0.05)
    first.close()
    second.close()
    await client.close()
    assert len(sim.state.calls("POST", "/backend/nf/create*")) == 1

    client2 = await aiohttp_client(create_app(config))
    engine = client2.app[keys.JOBS]
    for job_id in (first_id, second_id):
        run = engine.run_of(job_id)
        assert run is not None
        await asyncio.wait_for(run.done.wait(), 60)
        assert (await engine.get(job_id)).status == "completed"
    # the first was followed by its task id, the second (never sent) was sent once, now
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1
    (board,) = sim.state.calls("POST", "/backend/nf/create/storyboard")
    assert board.json["orientation"] == "portrait" and "Scene: second shot" in board.json["prompt"]
