"""Jobs as a persisted state machine: one create per job whatever the upstream answers, true
queued counts, and side effects undone after a cancel or a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.app import create_app
from sora2api.simulator import mp4_bytes, png
from sora2api.simulator.faults import CREATED_KINDS
from sora2api.store import Store
from sora2api.store.migrations import MIGRATIONS

from .conftest import KEY, Sim, config_for
from .helpers import add_token, admin_headers, chat, data_url, read_sse

CREATE = {"image": "/backend/video_gen", "video": "/backend/nf/create"}
MODEL = {"image": "sora-image", "video": "sora-video-10s"}


async def _row(client: TestClient, job_id: str) -> dict[str, Any]:
    row = await client.app[keys.STORE].fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert row is not None
    return row


async def _until(
    client: TestClient, job_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            row = await _row(client, job_id)
            if check(row):
                return row
            await asyncio.sleep(0.02)


async def _start(client: TestClient, body: dict[str, Any]) -> tuple[Any, str]:
    """A streaming chat request; returns the open response and its job id."""
    resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    return resp, orjson.loads((await resp.content.readline())[6:])["job_id"]


# -- the simulator's created_* faults ----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CREATED_KINDS))
async def test_created_fault_creates_the_task_then_answers_badly(sim: Sim, kind: str) -> None:
    sim.state.settings.hang_seconds = 0.2
    account = sim.state.add_account()
    sim.state.inject("POST", CREATE["video"], kind)
    headers = {
        "Authorization": f"Bearer {account.access_token}",
        "openai-sentinel-token": "AbCdEfGhIj12345",
    }
    body = {"kind": "video", "prompt": "p", "orientation": "landscape", "n_frames": 300}
    answer: tuple[int, bytes] | None = None
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(sim.url + CREATE["video"], json=body, headers=headers) as resp:
                answer = (resp.status, await resp.read())
        except aiohttp.ClientError:  # a reset: the connection is cut
            answer = None
    (task,) = sim.state.tasks.values()  # the create took effect
    assert task.prompt == "p"
    if kind == "created_reset":
        assert answer is None
    else:
        assert answer is not None
        status, raw = answer
        assert status >= 500 or task.id.encode() not in raw, answer
    assert sim.state.calls("POST", CREATE["video"])[0].fault == kind


async def test_created_fault_on_a_refused_request_passes_the_refusal_on(sim: Sim) -> None:
    sim.state.inject("POST", CREATE["video"], "created_500")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sim.url + CREATE["video"], json={}, headers={"Authorization": "Bearer x"}
        ) as resp,
    ):
        assert resp.status == 401  # the handler refused: nothing was created, nothing replaced
    assert not sim.state.tasks


# -- item 1: a create that may have reached the upstream is reconciled, never resent -----------


@pytest.mark.parametrize(
    ("kind", "task"),
    [
        ("created_500", "video"),
        ("created_502_html", "image"),
        ("created_malformed_json", "video"),
        ("created_missing_id", "image"),
        ("created_empty_200", "video"),
        ("created_reset", "video"),
        ("created_reset", "image"),
        ("created_hang", "video"),
    ],
)
async def test_uncertain_create_adopts_the_task_it_made(
    make_client: Callable[..., Awaitable[TestClient]], sim: Sim, kind: str, task: str
) -> None:
    client = await make_client(upstream={"request_timeout": 2.0})
    sim.state.settings.hang_seconds = 5
    sim.state.settings.video_seconds = 20
    sim.state.settings.image_seconds = 20
    for _ in range(2):  # a second token the old code would have resent the create on
        await add_token(client, sim.state.add_account())
    sim.state.inject("POST", CREATE[task], kind)
    resp = await client.post(
        "/v1/chat/completions", json=chat(MODEL[task], f"a {task} of a fox"), headers=KEY
    )
    body = await resp.json()
    assert resp.status == 200, body
    (upstream,) = sim.state.tasks.values()
    assert len(sim.state.calls("POST", CREATE[task])) == 1
    row = await _row(client, body["job_id"])
    assert (row["status"], row["phase"]) == ("completed", "completed")
    assert row["upstream_task_id"] == upstream.id


async def test_uncertain_create_that_made_nothing_fails_with_the_reason(
    client: TestClient, sim: Sim
) -> None:
    for _ in range(2):
        await add_token(client, sim.state.add_account())
    sim.state.inject("POST", CREATE["video"], "500")  # refused without creating anything
    resp = await client.post("/v1/chat/completions", json=chat(MODEL["video"], "x"), headers=KEY)
    body = await resp.json()
    assert resp.status == 502, body
    message = body["error"]["message"]
    assert "HTTP 500" in message and "no matching task" in message and "not sent again" in message
    assert len(sim.state.calls("POST", CREATE["video"])) == 1 and not sim.state.tasks
    # the account's lists were read to decide
    assert sim.state.calls("GET", "/backend/nf/pending*")


async def test_same_prompt_jobs_each_adopt_their_own_task(
    make_client: Callable[..., Awaitable[TestClient]], sim: Sim
) -> None:
    client = await make_client()
    sim.state.settings.video_seconds = 20
    await add_token(client, sim.state.add_account(), video_concurrency=3)
    sim.state.inject("POST", CREATE["video"], "created_500")
    body = chat(MODEL["video"], "the same prompt")
    answers = await asyncio.gather(
        *(client.post("/v1/chat/completions", json=body, headers=KEY) for _ in range(3))
    )
    ids = [(await a.json())["job_id"] for a in answers]
    assert [a.status for a in answers] == [200] * 3
    rows = [await _row(client, i) for i in ids]
    assert len(sim.state.calls("POST", CREATE["video"])) == 3
    assert {r["upstream_task_id"] for r in rows} == set(sim.state.tasks)  # 3 distinct tasks
    assert not client.app[keys.JOBS]._locks  # the per-prompt create locks are gone with their users


async def test_refused_create_still_moves_to_another_token(client: TestClient, sim: Sim) -> None:
    a, b = sim.state.add_account(), sim.state.add_account()
    await add_token(client, a)
    await add_token(client, b)
    sim.state.inject("POST", CREATE["image"], "429", times=1)
    resp = await client.post("/v1/chat/completions", json=chat(MODEL["image"], "x"), headers=KEY)
    assert resp.status == 200, await resp.text()
    calls = sim.state.calls("POST", CREATE["image"])
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].account_email != calls[1].account_email


async def test_upload_cut_off_is_sent_again(
    make_client: Callable[..., Awaitable[TestClient]], sim: Sim
) -> None:
    client = await make_client()
    await add_token(client, sim.state.add_account())
    sim.state.inject("POST", "/backend/uploads", "reset")
    content = [
        {"type": "text", "text": "move"},
        {"type": "image_url", "image_url": {"url": data_url(png((1, 2, 3)), "image/png")}},
    ]
    resp = await client.post(
        "/v1/chat/completions", json=chat(MODEL["image"], content), headers=KEY
    )
    assert resp.status == 200, await resp.text()
    assert len(sim.state.calls("POST", "/backend/uploads")) == 2
    assert len(sim.state.calls("POST", CREATE["image"])) == 1


# -- item 5: phases, true queued counts --------------------------------------------------------


async def test_waiting_for_a_token_is_queued_everywhere(client: TestClient, sim: Sim) -> None:
    sim.state.settings.video_seconds = 300
    await add_token(client, sim.state.add_account(), video_concurrency=1)
    first, first_id = await _start(client, chat(MODEL["video"], "one", stream=True))
    await _until(client, first_id, lambda r: r["phase"] == "polling")
    second, second_id = await _start(client, chat(MODEL["video"], "two", stream=True))
    row = await _until(client, second_id, lambda r: r["phase"] == "queued")
    assert row["status"] == "queued" and row["token_id"] is None
    admin = await admin_headers(client)
    stats = await (await client.get("/api/stats", headers=admin)).json()
    assert stats["jobs"]["queued"] == 1 and stats["jobs"]["running"] == 1
    listed = await (await client.get("/api/jobs?status=queued", headers=admin)).json()
    assert [j["id"] for j in listed["jobs"]] == [second_id]
    video = await (await client.get(f"/v1/videos/{second_id}", headers=KEY)).json()
    assert video["status"] == "queued"
    for status, expected in (("queued", [second_id]), ("in_progress", [first_id])):
        page = await (await client.get(f"/v1/videos?status={status}", headers=KEY)).json()
        assert [v["id"] for v in page["data"]] == expected
    bad = await client.get("/v1/videos?status=waiting", headers=KEY)
    error = (await bad.json())["error"]
    assert bad.status == 400 and error["param"] == "status" and "queued" in error["message"]
    assert (await client.post(f"/api/jobs/{second_id}/cancel", headers=admin)).status == 200
    row = await _row(client, second_id)
    assert (row["status"], row["phase"]) == ("cancelled", "cancelled")
    assert len(sim.state.calls("POST", CREATE["video"])) == 1
    first.close()
    second.close()


async def test_a_finished_job_passed_through_every_phase(
    client: TestClient, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.state.settings.video_seconds = 20
    await add_token(client, sim.state.add_account())
    store = client.app[keys.STORE]
    seen: list[str] = []
    original = store.update

    async def recording(table: str, key: str, value: Any, values: Any) -> int:
        if table == "jobs" and "phase" in values:
            seen.append(values["phase"])
        return await original(table, key, value, values)

    monkeypatch.setattr(store, "update", recording)  # a spy: every write still happens
    resp = await client.post("/v1/chat/completions", json=chat(MODEL["video"], "x"), headers=KEY)
    assert resp.status == 200
    assert seen == ["submitting", "submitted", "polling", "caching", "completed"]
    row = await _row(client, (await resp.json())["job_id"])
    state = orjson.loads(row["state"])
    # the task id was written with the move to submitted, the result with the move to caching
    assert row["upstream_task_id"] == state["task_id"] and state["result"]["task_id"]


# -- side effects undone after a cancel or a restart -------------------------------------------


async def test_cancelled_character_video_deletes_its_character(
    client: TestClient, sim: Sim
) -> None:
    sim.state.settings.video_seconds = 300
    sim.state.settings.cameo_seconds = 1
    await add_token(client, sim.state.add_account())
    content = [
        {"type": "text", "text": "dancing"},
        {"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}},
    ]
    resp, job_id = await _start(client, chat("sora-video-10s", content, stream=True))
    row = await _until(client, job_id, lambda r: r["phase"] == "polling")
    (entry,) = orjson.loads(row["cleanup"])
    assert entry["kind"] == "character"
    assert await client.app[keys.JOBS].cancel(job_id)
    row = await _row(client, job_id)
    assert row["status"] == "cancelled" and row["cleanup"] is None
    assert sim.state.characters[entry["id"]].deleted
    resp.close()


async def test_post_left_by_a_crash_is_deleted_at_the_next_start(
    sim: Sim, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    config = config_for(sim, tmp_path, generation={"watermark_free": True})
    sim.state.settings.video_seconds = 20
    client = await aiohttp_client(create_app(config))
    await add_token(client, sim.state.add_account())
    sim.state.inject("DELETE", "/backend/project_y/post/*", "500", times=None)
    resp = await client.post("/v1/chat/completions", json=chat(MODEL["video"], "x"), headers=KEY)
    assert resp.status == 200, await resp.text()
    job_id = (await resp.json())["job_id"]
    row = await _row(client, job_id)
    (entry,) = orjson.loads(row["cleanup"])  # the delete failed: still recorded
    assert entry["kind"] == "post" and not sim.state.posts[entry["id"]].deleted
    await client.close()
    sim.state.clear_faults()
    client2 = await aiohttp_client(create_app(config))
    await _until(client2, job_id, lambda r: r["cleanup"] is None)
    assert sim.state.posts[entry["id"]].deleted
    assert (await _row(client2, job_id))["status"] == "completed"


# -- item 16 in-process: a restart with a create in flight -------------------------------------


@pytest.mark.parametrize("created", [True, False])
async def test_restart_with_a_create_in_flight_adopts_or_fails(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    created: bool,
) -> None:
    sim.state.settings.video_seconds = 20
    sim.state.settings.hang_seconds = 60
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    await add_token(client, sim.state.add_account())
    sim.state.inject("POST", CREATE["video"], "created_hang" if created else "hang")
    resp, job_id = await _start(client, chat(MODEL["video"], "in flight", stream=True))
    await _until(client, job_id, lambda r: bool(orjson.loads(r["state"]).get("create")))
    async with asyncio.timeout(30):  # the create reaches the simulator just after that write
        while True:
            if sim.state.calls("POST", CREATE["video"]):
                break
            await asyncio.sleep(0.02)
    resp.close()
    await client.close()  # the create never got its answer
    assert (await _row_after(config, job_id))["phase"] == "submitting"
    client2 = await aiohttp_client(create_app(config))
    run = client2.app[keys.JOBS].run_of(job_id)
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 60)
    row = await _row(client2, job_id)
    assert len(sim.state.calls("POST", CREATE["video"])) == 1
    if created:
        assert row["status"] == "completed" and row["upstream_task_id"] in sim.state.tasks
    else:
        assert row["status"] == "failed" and row["error_code"] == "interrupted"
        assert "no matching task" in row["error_message"]


async def _row_after(config: Any, job_id: str) -> dict[str, Any]:
    store = await Store.open(config.path(config.storage.db_path))
    try:
        row = await store.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    finally:
        await store.close()
    assert row is not None
    return row


async def test_stream_of_a_reconciled_job_says_what_happened(client: TestClient, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.inject("POST", CREATE["image"], "created_500")
    resp, _ = await _start(client, chat(MODEL["image"], "x", stream=True))
    frames, _ = await read_sse(resp)
    text = orjson.dumps(frames).decode()
    assert "looking for the task upstream" in text and "Found the task upstream" in text


async def test_jobs_of_the_previous_schema_get_phases_and_are_never_resent(
    sim: Sim, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    config = config_for(sim, tmp_path)
    path = config.path(config.storage.db_path)
    old = await Store.open(path, migrations=MIGRATIONS[:3])
    spec = {"mode": "video", "model": "sora-video-10s", "prompt": "legacy", "seconds": 10}
    legacy = {
        "video_" + "1" * 32: ("in_progress", {"phase": "submitting"}),
        "video_" + "2" * 32: ("in_progress", {"phase": "poll", "task_id": "task_x"}),
        "video_" + "3" * 32: ("failed", {}),
    }
    for job_id, (status, state) in legacy.items():
        await old.insert(
            "jobs",
            {
                "id": job_id,
                "kind": "video",
                "model": "sora-video-10s",
                "request": orjson.dumps(spec).decode(),
                "status": status,
                "state": orjson.dumps(state).decode(),
                "created_at": 1.0,
            },
        )
    await old.close()
    new = await Store.open(path)
    phases = {r["id"]: r["phase"] for r in await new.fetchall("SELECT id, phase FROM jobs")}
    await new.close()
    assert list(phases.values()) == ["submitting", "polling", "failed"]
    client = await aiohttp_client(create_app(config))
    submitting = next(iter(legacy))
    run = client.app[keys.JOBS].run_of(submitting)
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 30)
    row = await _row(client, submitting)
    # the old code did not record whether its create went out: it is not sent now
    assert row["status"] == "failed" and "not resubmitted" in row["error_message"]
    assert not sim.state.calls("POST", "/backend/nf/create*")


async def test_character_upload_cut_off_is_sent_again(client: TestClient, sim: Sim) -> None:
    sim.state.settings.cameo_seconds = 1
    await add_token(client, sim.state.add_account())
    sim.state.inject("POST", "/backend/characters/upload", "reset")
    content = [{"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}}]
    resp = await client.post(
        "/v1/chat/completions", json=chat(MODEL["video"], content), headers=KEY
    )
    assert resp.status == 200, await resp.text()
    assert [c.status for c in sim.state.calls("POST", "/backend/characters/upload")] == [0, 200]
    assert len(sim.state.characters) == 1


async def test_restart_right_after_the_task_id_was_written_follows_it(
    sim: Sim, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    sim.state.settings.video_seconds = 100_000
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    await add_token(client, sim.state.add_account())
    resp, job_id = await _start(client, chat(MODEL["video"], "x", stream=True))
    await _until(client, job_id, lambda r: r["phase"] == "polling")
    resp.close()
    await client.close()
    # No upstream call separates `submitted` from `polling`: put the row where a crash between
    # the two would have left it.
    store = await Store.open(config.path(config.storage.db_path))
    await store.execute("UPDATE jobs SET phase = 'submitted' WHERE id = ?", (job_id,))
    await store.close()
    sim.state.advance(2_000)
    client2 = await aiohttp_client(create_app(config))
    run = client2.app[keys.JOBS].run_of(job_id)
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 30)
    assert (await _row(client2, job_id))["status"] == "completed"
    assert len(sim.state.calls("POST", CREATE["video"])) == 1


@pytest.mark.parametrize("outage", [1, None])
async def test_reconciliation_rides_out_a_list_error_or_names_it(
    client: TestClient, sim: Sim, outage: int | None
) -> None:
    sim.state.settings.video_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.inject("POST", CREATE["video"], "created_500")
    # the watcher polls the same list later: this fault only concerns the lookup right after
    sim.state.inject("GET", "/backend/nf/pending*", "502_html", times=outage)
    resp = await client.post("/v1/chat/completions", json=chat(MODEL["video"], "x"), headers=KEY)
    body = await resp.json()
    assert len(sim.state.calls("POST", CREATE["video"])) == 1
    if outage:
        assert resp.status == 200, body
        assert (await _row(client, body["job_id"]))["upstream_task_id"] in sim.state.tasks
    else:
        assert resp.status == 502, body
        assert "task lists could not be read" in body["error"]["message"]
