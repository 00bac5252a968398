"""Provider options (seed, watermark, generate_audio, camera_fixed) reach the upstream from
/v1/videos (JSON and multipart) and chat; the upstream's own usage figure is stored with the job
and summed by GET /api/admin/usage. The app over HTTP, the simulators as the upstreams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.app import create_app
from sora2api.providers.gemini import PROVIDER as GEMINI
from sora2api.providers.seedance import PROVIDER as SEEDANCE
from sora2api.simulator.providers import PROVIDER_STATE
from sora2api.simulator.providers import seedance as ark_sim

from . import test_gemini_e2e as gemini_e2e
from .conftest import KEY, Sim, config_for
from .helpers import admin_headers
from .provider_app import until
from .test_provider_seedance import MODEL, App

OPTIONS = {"seed": 42, "watermark": False, "generate_audio": True, "camera_fixed": True}


@pytest.fixture
async def app(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> App:
    # The simulator runs at 1/100 time: a task queues 0.05 s and runs 0.6 s; poll as fast.
    monkeypatch.setattr(SEEDANCE, "poll_interval", 0.05)
    client = await aiohttp_client(create_app(config_for(sim, tmp_path)))
    return App(client, sim, sim.server.app[PROVIDER_STATE], sim.url + "/api/v3")


def _sent_options(create: Any) -> dict[str, Any]:
    return {name: create.json[name] for name in OPTIONS if name in create.json}


async def _usage(client: TestClient, query: str) -> dict[str, Any]:
    resp = await client.get(f"/api/admin/usage?{query}", headers=await admin_headers(client))
    body = await resp.json()
    assert resp.status == 200, body
    return body  # type: ignore[no-any-return]


async def _stored_usage(client: TestClient, job_id: str) -> Any:
    row = await client.app[keys.STORE].jobs.get(job_id)
    assert row is not None
    return orjson.loads(row.upstream_usage) if row.upstream_usage else None


async def test_videos_json_options_reach_ark_exactly(app: App) -> None:
    await app.add_ok("ark1")
    video = await app.video(model=MODEL, prompt="a red kite", **OPTIONS)
    done = await app.wait(video["id"])
    assert done["status"] == "completed", done
    (create,) = app.creates()
    assert _sent_options(create) == OPTIONS
    assert create.json["seed"] is not True  # an int, not a bool that equals 1
    # The stored request keeps them, so a restart resubmits nothing but still knows them.
    job = await app.client.get(f"/api/jobs/{video['id']}", headers=await admin_headers(app.client))
    assert (await job.json())["request"]["options"] == OPTIONS


async def test_videos_multipart_text_fields_arrive_typed(app: App) -> None:
    await app.add_ok("ark1")
    form = FormData()
    for name, value in {
        "model": MODEL,
        "prompt": "a red kite",
        "seed": "7",
        "watermark": "false",
        "generate_audio": "TRUE",
        "camera_fixed": "true",
    }.items():
        form.add_field(name, value)
    resp = await app.client.post("/v1/videos", data=form, headers=KEY)
    assert resp.status == 200, await resp.text()
    done = await app.wait((await resp.json())["id"])
    assert done["status"] == "completed", done
    (create,) = app.creates()
    sent = _sent_options(create)
    assert sent == {"seed": 7, "watermark": False, "generate_audio": True, "camera_fixed": True}
    assert type(sent["seed"]) is int and type(sent["watermark"]) is bool


async def test_videos_without_options_sends_none(app: App) -> None:
    await app.add_ok("ark1")
    done = await app.wait((await app.video(model=MODEL, prompt="kite"))["id"])
    assert done["status"] == "completed", done
    (create,) = app.creates()
    assert _sent_options(create) == {}  # Ark's own defaults apply; we send no nulls


async def test_chat_with_an_alias_passes_the_seed(app: App) -> None:
    await app.add_ok("ark1")
    body = {
        "model": "seedance-2.0-portrait-5s",
        "messages": [{"role": "user", "content": "a kite"}],
        "seed": 1234,
        "watermark": False,
    }
    resp = await app.client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    (create,) = app.creates()
    assert _sent_options(create) == {"seed": 1234, "watermark": False}
    assert create.json["duration"] == 5


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("seed", "abc", "integer"),
        ("seed", 2**40, "from -1 to"),
        ("seed", 1.5, "integer"),
        ("seed", True, "integer"),
        ("watermark", "maybe", "true or false"),
        ("generate_audio", 1, "true or false"),
        ("camera_fixed", [], "true or false"),
    ],
)
async def test_wrong_types_are_a_400_naming_the_field_and_nothing_is_sent(
    app: App, field: str, value: Any, words: str
) -> None:
    await app.add_ok("ark1")
    videos = {"model": MODEL, "prompt": "kite", field: value}
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "kite"}], field: value}
    for path, body in (("/v1/videos", videos), ("/v1/chat/completions", chat)):
        resp = await app.client.post(path, json=body, headers=KEY)
        err = (await resp.json())["error"]
        assert resp.status == 400, (path, err)
        assert err["param"] == field and f"'{field}'" in err["message"], err
        assert words in err["message"], err
    assert app.creates() == []


async def test_multipart_wrong_text_is_a_400_naming_the_field(app: App) -> None:
    await app.add_ok("ark1")
    for name, value in (("seed", "4.2"), ("watermark", "yes"), ("seed", "")):
        form = FormData({"model": MODEL, "prompt": "kite", name: value})
        resp = await app.client.post("/v1/videos", data=form, headers=KEY)
        err = (await resp.json())["error"]
        assert resp.status == 400 and err["param"] == name, (value, err)
    assert app.creates() == []


async def test_seedance_usage_is_stored_and_summed_completed_only(app: App) -> None:
    await app.add_ok("ark1")
    ids = []
    for seconds in ("5", "10"):
        video = await app.video(model=MODEL, prompt="kite", seconds=seconds)
        assert (await app.wait(video["id"]))["status"] == "completed"
        ids.append(video["id"])
    # What Ark (the simulator) reports for each succeeded task, read from its own renderer.
    assert len(app.creates()) == 2 and len(app.ps.tasks) == 2
    reported = [ark_sim.render(app.ps, t, app.sim.url)["usage"] for t in app.ps.tasks.values()]
    stored = [await _stored_usage(app.client, job_id) for job_id in ids]
    assert sorted(stored, key=str) == sorted(reported, key=str)
    assert all(u["completion_tokens"] > 0 for u in stored)
    assert stored[0] != stored[1]  # 5 s and 10 s: each job keeps its own figure
    # A job that fails at Ark has no usage and adds nothing to the report.
    app.sim.state.scenario(outcome="violation", message="unsafe frames")
    failed = await app.video(model=MODEL, prompt="kite")
    assert (await app.wait(failed["id"]))["status"] == "failed"
    assert await _stored_usage(app.client, failed["id"]) is None

    report = await _usage(app.client, "group_by=provider")
    (group,) = report["groups"]
    assert group["group"] == "seedance"
    total = sum(u["total_tokens"] for u in reported)
    completion = sum(u["completion_tokens"] for u in reported)
    summed = {"completion_tokens": completion, "total_tokens": total}
    assert group["completed"]["jobs"] == 2 and group["completed"]["upstream_usage"] == summed
    assert report["totals"]["completed"]["upstream_usage"] == summed
    assert group["failed"]["jobs"] == 1 and group["failed"]["upstream_usage"] == {}
    assert report["totals"]["failed"]["upstream_usage"] == {}


async def test_gemini_usage_is_stored_and_summed(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GEMINI, "poll_interval", 0.05)
    monkeypatch.setattr(GEMINI, "staging_dir", tmp_path)
    client = await aiohttp_client(create_app(config_for(sim, tmp_path)))
    app = gemini_e2e.App(client, sim, sim.server.app[PROVIDER_STATE])
    await app.add_ok("g1")
    video = await app.video(model=gemini_e2e.OMNI, prompt="a kite", seconds="6", seed=9)
    done = await app.wait(video["id"])
    assert done["status"] == "completed", done
    (create,) = app.creates()
    assert create.json["generation_config"] == {"seed": 9}  # Gemini takes the seed alone
    # The simulator gives Google's usage on the completed interaction: 1000 tokens a second.
    stored = await _stored_usage(client, video["id"])
    assert stored == {"total_output_tokens": 6000, "total_tokens": 6000}, stored
    report = await _usage(client, "group_by=provider")
    (group,) = report["groups"]
    assert group["group"] == "gemini"
    assert group["completed"]["upstream_usage"] == stored


async def test_a_queued_job_keeps_its_options_across_a_restart(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SEEDANCE, "poll_interval", 0.05)
    ps = sim.server.app[PROVIDER_STATE]
    ps.settings.run_seconds = 300  # 3 s at the simulator's scale: time to stop mid-job
    config = config_for(sim, tmp_path)
    first = App(await aiohttp_client(create_app(config)), sim, ps, sim.url + "/api/v3")
    account = ps.add_account("seedance", name="ark1")
    # One slot: the second job waits in our queue, never reaching Ark before the restart.
    body = {"provider": "seedance", "token": account.key, "base_url": first.base}
    body["video_concurrency"] = 1
    resp = await first.client.post(
        "/api/tokens", json=body, headers=await admin_headers(first.client)
    )
    assert resp.status in (200, 201), await resp.text()
    running = await first.video(model=MODEL, prompt="first")
    queued = await first.video(model=MODEL, prompt="second", seed=5, camera_fixed=True)
    await until(lambda: bool(first.creates()))
    status = await first.client.get(f"/v1/videos/{queued['id']}", headers=KEY)
    assert (await status.json())["status"] == "queued"
    await first.client.close()
    second = App(await aiohttp_client(create_app(config)), sim, ps, sim.url + "/api/v3")
    assert (await second.wait(running["id"]))["status"] == "completed"
    assert (await second.wait(queued["id"]))["status"] == "completed"
    one, two = second.creates()  # each job created exactly once
    assert one.json["content"][0]["text"] == "first" and _sent_options(one) == {}
    assert two.json["content"][0]["text"] == "second"
    assert _sent_options(two) == {"seed": 5, "camera_fixed": True}


async def test_a_seed_gemini_cannot_take_is_a_400_at_request_time_without_a_create(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ark takes seeds to 2**32 - 1, Gemini to 2**31 - 1: the model's own range is checked when
    # the request arrives (every Interactions create is billed, so a refused one is never sent).
    monkeypatch.setattr(GEMINI, "poll_interval", 0.05)
    monkeypatch.setattr(GEMINI, "staging_dir", tmp_path)
    client = await aiohttp_client(create_app(config_for(sim, tmp_path)))
    app = gemini_e2e.App(client, sim, sim.server.app[PROVIDER_STATE])
    await app.add_ok("g1")
    for seed in (2**31, -1):
        body = {"model": gemini_e2e.OMNI, "prompt": "a kite", "seed": seed}
        resp = await client.post("/v1/videos", json=body, headers=KEY)
        assert resp.status == 400, await resp.text()
        error = (await resp.json())["error"]
        assert error["param"] == "seed" and "from 0 to 2147483647" in error["message"], error
    assert app.creates() == []
    listed = await (await client.get("/v1/videos", headers=KEY)).json()
    assert listed["data"] == []  # nothing stored either
    video = await app.video(model=gemini_e2e.OMNI, prompt="a kite", seed=2**31 - 1)
    assert (await app.wait(video["id"]))["status"] == "completed"
    (create,) = app.creates()
    assert create.json["generation_config"] == {"seed": 2**31 - 1}
