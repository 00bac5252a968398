"""Provider jobs end to end: the real app with OpenAI-Videos-gateway accounts, the simulator's
gateway as the upstream. What the client saw and what the gateway received are both checked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.app import create_app
from sora2api.models import MODELS
from sora2api.providers.base import Account
from sora2api.providers.openai import PROVIDER
from sora2api.simulator.providers import PROVIDER_STATE, ProviderAccount, ProviderState
from sora2api.upstream.errors import Kind, UpstreamFailure

from .conftest import KEY, Sim, config_for
from .helpers import add_token, chat, data_url, read_sse, reasoning

CREATE = "/v1/videos"


def gateway(sim: Sim) -> ProviderState:
    return sim.server.app[PROVIDER_STATE]


def base_url(sim: Sim) -> str:
    return sim.url + "/v1"


async def add_gateway_account(
    client: TestClient, sim: Sim, account: ProviderAccount, *, models: list[str] | None = None
) -> int:
    """The one way these tests add a gateway account: onboard it with the provider (GET /models
    with its key), then store it in the pool. Switch this to POST /api/tokens {"provider":
    "openai", "token", "base_url"} once that route onboards providers."""
    info = await PROVIDER.onboard(
        client.app[keys.HTTP], Account(0, "openai", account.key, base_url(sim))
    )
    return await client.app[keys.POOL].insert(
        {
            "access_token": account.key,
            "provider": "openai",
            "base_url": base_url(sim),
            "name": account.name,
            "served_models": orjson.dumps(list(info.models)).decode(),
            "models": orjson.dumps(models).decode() if models is not None else "",
        }
    )


async def control(sim: Sim, path: str, body: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.post(sim.url + path, json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def row_of(client: TestClient, job_id: str) -> dict[str, Any]:
    row = await client.app[keys.STORE].fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert row is not None
    return row


async def until_row(
    client: TestClient, job_id: str, check: Callable[[dict[str, Any]], bool], within: float = 20
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            row = await row_of(client, job_id)
            if check(row):
                return row
            await asyncio.sleep(0.02)


async def wait_video(client: TestClient, video_id: str, within: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            resp = await client.get(f"/v1/videos/{video_id}", headers=KEY)
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            if body["status"] in ("completed", "failed"):
                return body
            await asyncio.sleep(0.03)


async def create(client: TestClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/videos", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def creates(sim: Sim) -> list[Any]:
    return sim.state.calls("POST", CREATE)


def polls_of(sim: Sim, upstream_id: str) -> list[Any]:
    return sim.state.calls("GET", f"/v1/videos/{upstream_id}")


@pytest.fixture
async def gw(sim: Sim) -> ProviderState:
    """The simulator's gateway with quick tasks (0.05 s queued, 0.6 s running at its time scale)."""
    ps = gateway(sim)
    ps.settings.run_seconds = 60.0
    return ps


async def test_a_video_job_makes_one_create_and_its_cached_bytes_outlive_the_upstream(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    account = gw.add_account("openai", name="gw1")
    token_id = await add_gateway_account(client, sim, account)
    video = await create(client, model="sora-2", prompt="a fox", seconds="8", size="1280x720")
    assert video["id"].startswith("video_") and video["model"] == "sora-2"
    assert (video["seconds"], video["size"]) == ("8", "1280x720")
    done = await wait_video(client, video["id"])
    assert done["status"] == "completed" and done["progress"] == 100, done

    sent = creates(sim)
    assert len(sent) == 1 and sent[0].status == 200
    assert sent[0].json == {
        "model": "sora-2",
        "prompt": "a fox",
        "seconds": "8",
        "size": "1280x720",
    }
    assert sent[0].headers["authorization"] == f"Bearer {account.key}"
    row = await row_of(client, video["id"])
    upstream_id = row["upstream_task_id"]
    assert upstream_id in gw.tasks and row["token_id"] == token_id
    assert upstream_id != video["id"]  # our ids are our own
    assert polls_of(sim, upstream_id), "the task was polled by its id"
    content_calls = sim.state.calls("GET", f"/v1/videos/{upstream_id}/content")
    assert [c.headers["authorization"] for c in content_calls] == [f"Bearer {account.key}"]

    resp = await client.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert resp.status == 200
    data = await resp.read()
    assert data[4:8] == b"ftyp"
    # The upstream forgets the video: our cached copy still serves the same bytes.
    gw.tasks[upstream_id].deleted = True
    async with aiohttp.ClientSession() as http:
        gone = await http.get(
            base_url(sim) + f"/videos/{upstream_id}/content",
            headers={"Authorization": f"Bearer {account.key}"},
        )
        assert gone.status == 404
    again = await client.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert again.status == 200 and await again.read() == data
    assert len(creates(sim)) == 1


async def test_chat_streams_progress_and_the_cached_result(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-2", "a cat", stream=True), headers=KEY
    )
    assert resp.status == 200
    frames, _ = await read_sse(resp)
    steps = reasoning(frames)
    pcts = [s["progress"] for s in steps if isinstance(s, dict) and "progress" in s]
    assert any(0 < p < 100 for p in pcts), steps  # the gateway's own percentages
    final = [f for f in frames if "choices" in f and f["choices"][0]["finish_reason"]][-1]
    result = orjson.loads(final["choices"][0]["delta"]["content"])
    assert result["type"] == "video" and "/tmp/" in result["url"]
    path = result["url"].split("/tmp/", 1)[1]
    media = await client.get(f"/tmp/{path}")
    assert media.status == 200 and (await media.read())[4:8] == b"ftyp"
    assert len(creates(sim)) == 1


async def test_progress_is_never_invented_when_the_gateway_gives_none(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    variant = {
        "status_case": "upper",
        "unknown_queued": True,
        "processing": True,
        "id_field": "task_id",
        "wrap": True,
        "progress": False,
    }
    gw.settings.run_seconds = 1000.0  # 10 s at the simulator's scale: finished by the clock
    account = gw.add_account("openai", name="gw1", variant=variant)
    await add_gateway_account(client, sim, account)
    video = await create(client, model="sora-2", prompt="lenient")
    row = await until_row(client, video["id"], lambda r: r["phase"] == "polling")
    upstream_id = row["upstream_task_id"]
    assert upstream_id in gw.tasks  # read from task_id inside {code, data}
    run = client.app[keys.JOBS].run_of(video["id"])
    assert run is not None
    async with asyncio.timeout(20):
        async for event in run.follow(1.0):
            if event is not None and "PROCESSING" in event.message:
                break
    mid = await (await client.get(f"/v1/videos/{video['id']}", headers=KEY)).json()
    assert mid["status"] == "in_progress" and mid["progress"] == 0
    sim.state.advance(10_000)
    done = await wait_video(client, video["id"])
    assert done["status"] == "completed", done
    generation = [e for e in run.events if e.stage == "generation" and e.status == "processing"]
    assert generation and all(e.progress is None for e in generation)
    assert any("upstream status: PROCESSING" in e.message for e in generation)
    assert len(creates(sim)) == 1


async def test_a_429_moves_the_job_to_another_account_and_cools_the_first(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    first, second = gw.add_account("openai", name="gw1"), gw.add_account("openai", name="gw2")
    ids = {
        first.key: await add_gateway_account(client, sim, first),
        second.key: await add_gateway_account(client, sim, second),
    }
    # The first create, whichever account sends it, is refused with Retry-After.
    await control(
        sim,
        "/_sim/providers/faults",
        {
            "provider": "openai",
            "error": "rate_limit",
            "retry_after": 120,
            "method": "POST",
            "path": CREATE,
        },
    )
    started = time.time()
    video = await create(client, model="sora-2", prompt="failover")
    done = await wait_video(client, video["id"])
    assert done["status"] == "completed", done
    sent = creates(sim)
    assert [c.status for c in sent] == [429, 200]
    refused = sent[0].headers["authorization"].removeprefix("Bearer ")
    served = sent[1].headers["authorization"].removeprefix("Bearer ")
    assert refused != served
    cooled = client.app[keys.POOL].state(ids[refused]).token
    assert cooled.cooldown_until is not None and cooled.cooldown_until >= started + 100
    row = await row_of(client, video["id"])
    assert row["token_id"] == ids[served]
    # Status and content calls go to the account that created the task, never the other.
    upstream_id = row["upstream_task_id"]
    calls = sim.state.calls("GET", f"/v1/videos/{upstream_id}*")
    assert calls and {c.headers["authorization"] for c in calls} == {f"Bearer {served}"}


async def test_a_create_answered_500_is_never_resent(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw2"))
    await control(
        sim,
        "/_sim/providers/faults",
        {"provider": "openai", "error": "server_error", "method": "POST", "path": CREATE},
    )
    video = await create(client, model="sora-2", prompt="maybe made")
    done = await wait_video(client, video["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "server_error"
    assert "not sent again" in done["error"]["message"]
    assert "The server had an error" in done["error"]["message"]
    assert len(creates(sim)) == 1


@pytest.mark.parametrize("how", ["delete", "admin"])
async def test_cancel_reaches_the_upstream(
    client: TestClient, sim: Sim, gw: ProviderState, how: str
) -> None:
    gw.settings.run_seconds = 100_000.0
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    video = await create(client, model="sora-2", prompt="stop me")
    row = await until_row(client, video["id"], lambda r: r["phase"] == "polling")
    upstream_id = row["upstream_task_id"]
    if how == "delete":
        resp = await client.delete(f"/v1/videos/{video['id']}", headers=KEY)
        assert resp.status == 200
    else:
        from .helpers import admin_headers

        resp = await client.post(
            f"/api/jobs/{video['id']}/cancel", headers=await admin_headers(client)
        )
        assert resp.status == 200, await resp.text()
        assert (await row_of(client, video["id"]))["status"] == "cancelled"
    deletes = sim.state.calls("DELETE", f"/v1/videos/{upstream_id}")
    assert [d.status for d in deletes] == [200]
    assert gw.tasks[upstream_id].cancelled_at is not None
    assert sum(t.busy["video"] for t in client.app[keys.POOL].tokens()) == 0


async def test_after_a_restart_the_job_completes_with_one_create(
    sim: Sim,
    gw: ProviderState,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    gw.settings.run_seconds = 100_000.0
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    account = gw.add_account("openai", name="gw1")
    token_id = await add_gateway_account(client, sim, account)
    video = await create(client, model="sora-2", prompt="survive a restart")
    row = await until_row(client, video["id"], lambda r: r["phase"] == "polling")
    await client.close()
    sim.state.advance(2_000)

    client2 = await aiohttp_client(create_app(config))
    run = client2.app[keys.JOBS].run_of(video["id"])
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 30)
    after = await row_of(client2, video["id"])
    assert after["status"] == "completed", after
    assert after["token_id"] == token_id and after["upstream_task_id"] == row["upstream_task_id"]
    assert len(creates(sim)) == 1
    resp = await client2.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"


async def test_a_restart_during_the_create_fails_the_job_without_resending(
    sim: Sim,
    gw: ProviderState,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    # The create hangs upstream until the server goes down.
    sim.state.inject("POST", CREATE, "hang", seconds=30)
    video = await create(client, model="sora-2", prompt="in flight")
    async with asyncio.timeout(20):
        while True:  # the create has reached the gateway (the journal shows it on arrival)
            if creates(sim):
                break
            await asyncio.sleep(0.02)
    await client.close()
    client2 = await aiohttp_client(create_app(config))
    run = client2.app[keys.JOBS].run_of(video["id"])
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 30)
    row = await row_of(client2, video["id"])
    assert row["status"] == "failed" and row["error_code"] == "interrupted"
    assert "not sent again" in row["error_message"]
    assert len(creates(sim)) == 1


async def test_bad_seconds_or_size_is_a_400_listing_what_the_model_allows(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    resp = await client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "x", "seconds": "10"}, headers=KEY
    )
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["param"] == "seconds" and "4, 8, 12" in err["message"]
    resp = await client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "x", "size": "999x999"}, headers=KEY
    )
    err = (await resp.json())["error"]
    assert resp.status == 400 and err["param"] == "size"
    assert "720x1280, 1280x720, 1024x1792, 1792x1024" in err["message"]
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-2", "x", seconds=5), headers=KEY
    )
    err = (await resp.json())["error"]
    assert resp.status == 400 and err["param"] == "seconds" and "4, 8, 12" in err["message"]
    # A model the table does not know: the upstream decides, but the shape must be right.
    resp = await client.post(
        "/v1/videos",
        json={"model": "doubao-seedance-2-0-260128", "prompt": "x", "size": "big"},
        headers=KEY,
    )
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "size"
    assert creates(sim) == []


async def test_models_list_what_the_accounts_serve(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    async def listed() -> list[str]:
        body = await (await client.get("/v1/models", headers=KEY)).json()
        return [m["id"] for m in body["data"]]

    assert await listed() == []
    one = gw.add_account("openai", name="gw1", models=["sora-2", "veo-3.1-fast"])
    await add_gateway_account(client, sim, one)
    assert await listed() == ["sora-2", "veo-3.1-fast"]
    two = gw.add_account("openai", name="gw2", models=["sora-2-pro", "veo-3.1-fast"])
    # The admin restricts the second account to one of its models.
    await add_gateway_account(client, sim, two, models=["sora-2-pro"])
    assert await listed() == ["sora-2", "veo-3.1-fast", "sora-2-pro"]
    model = await (await client.get("/v1/models/sora-2-pro", headers=KEY)).json()
    assert model["owned_by"] == "openai"
    # What a request may choose travels with the model (the panel's Playground reads it).
    assert model["seconds"] == [4, 8, 12] and model["default_seconds"] == 4
    assert "720x1280" in model["sizes"] and model["remix"] is True and model["kind"] == "video"
    await add_token(client, sim.state.add_account())  # a Sora token adds Sora's nine
    assert await listed() == [*MODELS, "sora-2", "veo-3.1-fast", "sora-2-pro"]


async def test_an_image_is_sent_as_multipart_input_reference(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    from sora2api.simulator import png

    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    image = png((200, 10, 10))
    content = [
        {"type": "text", "text": "animate"},
        {"type": "image_url", "image_url": {"url": data_url(image, "image/png")}},
    ]
    resp = await client.post("/v1/chat/completions", json=chat("sora-2", content), headers=KEY)
    assert resp.status == 200, await resp.text()
    sent = creates(sim)
    assert len(sent) == 1 and sent[0].json is None
    assert sent[0].form["prompt"]["text"] == "animate"
    assert sent[0].form["input_reference"]["size"] == len(image)


async def test_onboarding_a_wrong_key_names_the_upstream_answer(
    client: TestClient, sim: Sim
) -> None:
    with pytest.raises(UpstreamFailure) as err:
        await PROVIDER.onboard(
            client.app[keys.HTTP], Account(0, "openai", "sk-wrong-000000000000", base_url(sim))
        )
    assert err.value.kind is Kind.TOKEN_INVALID and err.value.status == 401
    assert "Incorrect API key" in err.value.message


async def test_an_unreachable_gateway_is_transport_never_sent_and_named(
    client: TestClient, unused_tcp_port: int
) -> None:
    gone = Account(0, "openai", "sk-any-000000000000", f"http://127.0.0.1:{unused_tcp_port}/v1")
    with pytest.raises(UpstreamFailure) as err:
        await PROVIDER.onboard(client.app[keys.HTTP], gone)
    failure = err.value
    assert failure.kind is Kind.TRANSPORT and failure.sent is False
    assert failure.message.startswith("connection failed: ")
    assert failure.describe().startswith("Could not reach the gateway")


async def test_a_remix_goes_to_the_account_that_made_the_source(
    client: TestClient, sim: Sim, gw: ProviderState
) -> None:
    first = gw.add_account("openai", name="gw1")
    ids = [await add_gateway_account(client, sim, first)]
    video = await create(client, model="sora-2", prompt="a fox")
    assert (await wait_video(client, video["id"]))["status"] == "completed"
    source = await row_of(client, video["id"])
    second = gw.add_account("openai", name="gw2")
    ids.append(await add_gateway_account(client, sim, second))
    resp = await client.post(
        f"/v1/videos/{video['id']}/remix", json={"prompt": "at night"}, headers=KEY
    )
    assert resp.status == 200, await resp.text()
    remix = await resp.json()
    assert remix["remixed_from_video_id"] == video["id"]
    done = await wait_video(client, remix["id"])
    assert done["status"] == "completed", done
    sent = sim.state.calls("POST", f"/v1/videos/{source['upstream_task_id']}/remix")
    assert len(sent) == 1 and sent[0].json == {"prompt": "at night"}
    assert sent[0].headers["authorization"] == f"Bearer {first.key}"
    row = await row_of(client, remix["id"])
    assert row["token_id"] == ids[0]
    assert gw.tasks[row["upstream_task_id"]].remixed_from == source["upstream_task_id"]


async def test_poll_limits_bound_the_polls_in_flight_per_account() -> None:
    from sora2api.providers.limits import CONCURRENT, PollLimits

    limits = PollLimits(per_second=1000.0)
    inside: dict[int, int] = {1: 0, 2: 0}
    most: dict[int, int] = {1: 0, 2: 0}
    release = asyncio.Event()

    async def poll(account: int) -> None:
        async with limits.slot(account):
            inside[account] += 1
            most[account] = max(most[account], inside[account])
            await release.wait()
            inside[account] -= 1

    tasks = [asyncio.create_task(poll(a)) for a in (1, 2) for _ in range(CONCURRENT + 3)]
    async with asyncio.timeout(10):
        while True:  # every account fills its slots; the rest wait
            if inside == {1: CONCURRENT, 2: CONCURRENT}:
                break
            await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert most == {1: CONCURRENT, 2: CONCURRENT}


async def test_the_content_download_trusts_the_accounts_own_origin_only(
    make_client: Callable[..., Awaitable[TestClient]], sim: Sim, gw: ProviderState
) -> None:
    # No configured Sora origin is the gateway's: only the account's base_url lets the cache
    # fetch from this loopback address (the URL guard refuses private addresses otherwise).
    elsewhere = {
        "base_url": "https://sora.example/backend",
        "third_party_url": "https://sora.example/tp/{post_id}.mp4",
    }
    client = await make_client(upstream=elsewhere)
    await add_gateway_account(client, sim, gw.add_account("openai", name="gw1"))
    video = await create(client, model="sora-2", prompt="trusted origin")
    done = await wait_video(client, video["id"])
    assert done["status"] == "completed", done
    resp = await client.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"


@pytest.mark.parametrize("style", ["openai", "newapi", "newapi_task"])
def test_error_envelopes_of_openai_and_new_api_are_classified(style: str) -> None:
    from sora2api.providers.openai.wire import classify_answer
    from sora2api.simulator.providers import Variant
    from sora2api.simulator.providers.openai_videos import fault

    variant = Variant(error_style=style)
    expected = {
        "rate_limit": Kind.RATE_LIMITED,
        "insufficient_quota": Kind.QUOTA_EXHAUSTED,
        "invalid_api_key": Kind.TOKEN_INVALID,
        "moderation_blocked": Kind.CONTENT_POLICY,
        "invalid_request": Kind.BAD_REQUEST,
        "server_error": Kind.SERVER,
        "overloaded": Kind.SERVER,
    }
    for name, kind in expected.items():
        status, body, headers = fault(variant, name, {"retry_after": 9, "message": f"m-{name}"})
        got = classify_answer(status, orjson.dumps(body), "application/json", headers, "create")
        assert (got.kind, got.message, got.retry_after) == (kind, f"m-{name}", 9.0), name
    garbage = classify_answer(200, b"<html>oops</html>", "text/html", {}, "retrieve")
    assert garbage.kind is Kind.MALFORMED and garbage.sent
