"""Per-key limits (a 429 naming the limit, with Retry-After, nothing sent upstream) and usage
that counts only completed jobs, reported by GET /api/admin/usage."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat
from .keys_helpers import assert_envelope, finished, new_key, running, video


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    sim.state.settings.video_seconds = 30
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


def creates(sim: Sim) -> int:
    """Every upstream call that makes a task (and spends quota)."""
    return len(sim.state.calls("POST", "/backend/nf/create*")) + len(
        sim.state.calls("POST", "/backend/video_gen")
    )


async def image(client: TestClient, headers: dict[str, str], prompt: str = "a cat") -> Any:
    return await client.post(
        "/v1/chat/completions", json=chat("sora-image", prompt), headers=headers
    )


async def refused(resp: Any, limit: str) -> dict[str, Any]:
    """A limit hit: 429, the envelope naming the limit, a Retry-After in whole seconds."""
    body = await resp.json()
    assert resp.status == 429, body
    error = assert_envelope(body)
    assert error["type"] == "rate_limit_error" and error["code"] == "key_limit_exceeded"
    assert f"'{limit}'" in error["message"], error
    assert int(resp.headers["Retry-After"]) >= 1
    return error


async def test_concurrency_limit(ready: TestClient, sim: Sim) -> None:
    _, headers = await new_key(ready, limits={"concurrency": 1})
    sim.state.scenario("success", target="video", plateau=True)  # stuck at 0 % until deleted
    stuck = await video(ready, headers)
    await running(ready, stuck["id"])
    resp = await ready.post("/v1/videos", json={"prompt": "two"}, headers=headers)
    error = await refused(resp, "concurrency")
    assert "1 jobs running" in error["message"]
    resp = await image(ready, headers)
    await refused(resp, "concurrency")
    assert creates(sim) == 1
    # another key and the bootstrap key are not held back by this one
    assert (await image(ready, KEY)).status == 200
    # when the running job ends, the key may create again
    assert (await ready.delete(f"/v1/videos/{stuck['id']}", headers=headers)).status == 200
    assert (await image(ready, headers)).status == 200


async def test_rpm_limit(ready: TestClient, sim: Sim) -> None:
    _, headers = await new_key(ready, limits={"rpm": 2})
    # refused requests create nothing and do not count
    bad = await ready.post("/v1/chat/completions", json=chat("nope", "x"), headers=headers)
    assert bad.status == 400
    for prompt in ("one", "two"):
        assert (await image(ready, headers, prompt)).status == 200
    resp = await image(ready, headers, "three")
    error = await refused(resp, "rpm")
    assert "2 jobs a minute" in error["message"] and "resets in" in error["message"]
    assert int(resp.headers["Retry-After"]) <= 60
    assert creates(sim) == 2


async def test_video_seconds_per_day(ready: TestClient, sim: Sim) -> None:
    _, headers = await new_key(ready, limits={"video_seconds_per_day": 15})
    done = await video(ready, headers)
    assert (await finished(ready, done["id"]))["status"] == "completed"
    resp = await ready.post("/v1/videos", json={"prompt": "b", "seconds": "10"}, headers=headers)
    error = await refused(resp, "video_seconds_per_day")
    assert "10 of 15 s used today" in error["message"] and "resets at" in error["message"]
    midnight = dt.datetime.combine(
        dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1), dt.time(), dt.UTC
    )
    assert midnight.strftime("%Y-%m-%dT%H:%M:%SZ") in error["message"]
    assert int(resp.headers["Retry-After"]) <= 86400
    assert creates(sim) == 1
    # deleting the finished job does not give the allowance back
    assert (await ready.delete(f"/v1/videos/{done['id']}", headers=headers)).status == 200
    again = await ready.post("/v1/videos", json={"prompt": "c"}, headers=headers)
    await refused(again, "video_seconds_per_day")
    # images are not video seconds
    assert (await image(ready, headers)).status == 200


async def test_a_failed_job_costs_nothing(ready: TestClient, sim: Sim) -> None:
    _, headers = await new_key(ready, limits={"images_per_day": 1})
    sim.state.scenario("fail", target="image", message="render farm on fire")
    failed = await image(ready, headers, "doomed")
    assert failed.status == 502, await failed.text()
    assert (await image(ready, headers, "fine")).status == 200
    resp = await image(ready, headers, "one too many")
    error = await refused(resp, "images_per_day")
    assert "1 of 1 images used today" in error["message"]
    assert creates(sim) == 2


async def test_limits_can_change_and_disappear(ready: TestClient) -> None:
    created, headers = await new_key(ready, limits={"images_per_day": 1})
    assert (await image(ready, headers)).status == 200
    await refused(await image(ready, headers), "images_per_day")
    admin = await admin_headers(ready)
    resp = await ready.put(f"/api/admin/keys/{created['id']}", json={"limits": {}}, headers=admin)
    assert resp.status == 200
    assert (await image(ready, headers)).status == 200


async def _usage(client: TestClient, query: str) -> dict[str, Any]:
    resp = await client.get(f"/api/admin/usage?{query}", headers=await admin_headers(client))
    body = await resp.json()
    assert resp.status == 200, body
    return body  # type: ignore[no-any-return]


def _bucket(jobs: int, seconds: float = 0, images: int = 0) -> dict[str, Any]:
    return {"jobs": jobs, "video_seconds": seconds, "images": images, "upstream_usage": {}}


async def test_usage_report(ready: TestClient, sim: Sim) -> None:
    alice_key, alice = await new_key(ready, name="alice")
    _, bob = await new_key(ready, name="bob")
    assert (await image(ready, alice)).status == 200
    sim.state.scenario("fail", target="image", message="no")
    assert (await image(ready, alice)).status == 502
    done = await video(ready, alice)
    await finished(ready, done["id"])
    sim.state.scenario("success", target="video", plateau=True)
    stuck = await video(ready, alice, seconds="15", size="720x1280")
    await running(ready, stuck["id"])
    assert (await ready.delete(f"/v1/videos/{stuck['id']}", headers=alice)).status == 200
    assert (await image(ready, bob)).status == 200
    assert (await image(ready, KEY)).status == 200

    mine = await _usage(ready, f"key={alice_key['id']}&group_by=model")
    assert mine["totals"] == {
        "completed": _bucket(2, 10, 1),
        "failed": _bucket(1, 0, 1),
        "cancelled": _bucket(1, 15, 0),
    }
    groups = {g["group"]: g for g in mine["groups"]}
    assert set(groups) == {"sora-image", "sora-2"}
    assert groups["sora-image"]["completed"] == _bucket(1, 0, 1)
    assert groups["sora-image"]["failed"] == _bucket(1, 0, 1)
    assert groups["sora-2"]["completed"] == _bucket(1, 10, 0)
    assert groups["sora-2"]["cancelled"] == _bucket(1, 15, 0)

    by_provider = await _usage(ready, f"key={alice_key['id']}&group_by=provider")
    assert [g["group"] for g in by_provider["groups"]] == ["sora"]
    assert by_provider["groups"][0]["completed"] == _bucket(2, 10, 1)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    by_day = await _usage(ready, f"key={alice_key['id']}")
    assert by_day["group_by"] == "day" and [g["group"] for g in by_day["groups"]] == [today]
    # everyone's: alice's two completed, bob's and the bootstrap key's image
    everyone = await _usage(ready, "group_by=provider")
    assert everyone["totals"]["completed"] == _bucket(4, 10, 3)
    # a window after now holds nothing
    later = await _usage(ready, f"from={int(time.time()) + 3600}")
    assert later["groups"] == [] and later["totals"]["completed"] == _bucket(0)
    window = await _usage(ready, f"key={alice_key['id']}&from={today}&to={int(time.time()) + 60}")
    assert window["totals"]["completed"]["jobs"] == 2
    # usage outlives the jobs: deleting them changes nothing
    assert (await ready.delete(f"/v1/videos/{done['id']}", headers=alice)).status == 200
    query = f"key={alice_key['id']}&group_by=model"
    assert (await _usage(ready, query))["totals"] == mine["totals"]
    # and so does deleting the key: its usage stays reportable
    admin = await admin_headers(ready)
    assert (await ready.delete(f"/api/admin/keys/{alice_key['id']}", headers=admin)).status == 200
    assert (await _usage(ready, query))["totals"] == mine["totals"]


@pytest.mark.parametrize(
    ("query", "status", "param"),
    [
        ("group_by=week", 400, "group_by"),
        ("key=alice", 400, "key"),
        ("key=99999", 404, "id"),
        ("from=yesterday", 400, "from"),
        ("from=2000&to=1000", 400, "to"),
    ],
)
async def test_usage_refuses_bad_queries(
    client: TestClient, query: str, status: int, param: str
) -> None:
    resp = await client.get(f"/api/admin/usage?{query}", headers=await admin_headers(client))
    assert resp.status == status
    assert_envelope(await resp.json(), param if status == 400 else None)


async def test_upstream_usage_is_summed_per_state(client: TestClient) -> None:
    """A provider writes jobs.upstream_usage before the job ends; the ledger and report sum it."""
    store = client.app[keys.STORE]
    now = time.time()
    for job_id, usage, final in [
        ("video_a", '{"total_tokens": 100, "detail": {"video": 3}}', "completed"),
        ("video_b", '{"total_tokens": 50}', "completed"),
        ("video_c", '{"total_tokens": 7}', "failed"),
    ]:
        await store.insert(
            "jobs",
            {
                "id": job_id, "kind": "video", "model": "seedance-pro", "request": "{}",
                "status": "in_progress", "created_at": now, "provider": "seedance",
                "video_seconds": 5, "upstream_usage": usage,
            },
        )  # fmt: skip
        await store.execute(
            "UPDATE jobs SET status = ?, completed_at = ? WHERE id = ?", (final, now, job_id)
        )
    report = await _usage(client, "group_by=provider")
    (group,) = report["groups"]
    assert group["group"] == "seedance"
    assert group["completed"]["upstream_usage"] == {"total_tokens": 150, "detail": {"video": 3}}
    assert group["completed"]["video_seconds"] == 10
    assert report["totals"]["failed"]["upstream_usage"] == {"total_tokens": 7}
