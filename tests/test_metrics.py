"""GET /metrics: its own bearer token, and the Prometheus text format read back by
prometheus_client's own parser after real jobs ran through the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sora2api import keys

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat
from .test_provider_openai import CREATE, add_gateway_account, control, gateway, wait_video

TOKEN = "metrics-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient) -> Samples:
    """Every sample of one scrape by (name, sorted labels), parsed by prometheus_client."""
    resp = await client.get("/metrics", headers=BEARER)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    out: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def test_no_token_configured_means_no_route(client: TestClient) -> None:
    resp = await client.get("/metrics", headers=BEARER)
    assert resp.status == 404
    unknown = await client.get("/no-such-route")
    assert (await resp.json()) == (await unknown.json())  # as if the route did not exist


async def test_a_wrong_or_missing_token_is_a_401_envelope(make_client: Any) -> None:
    client = await make_client(metrics={"token": TOKEN})
    for headers in ({}, {"Authorization": "Bearer nope"}, KEY, {"Authorization": TOKEN}):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        error = (await resp.json())["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert error["type"] == "authentication_error"
        assert "metrics token" in error["message"]
        assert TOKEN not in error["message"]


async def test_the_token_is_masked_in_the_settings_view(make_client: Any) -> None:
    client = await make_client(metrics={"token": TOKEN})
    resp = await client.get("/api/admin/settings", headers=await admin_headers(client))
    body = await resp.json()
    assert resp.status == 200, body
    assert TOKEN not in orjson.dumps(body).decode()
    row = [s for s in body["settings"] if s["key"] == "metrics.token"][0]
    assert row["secret"] is True and row["value"] == "…" + TOKEN[-4:]


async def _until_submitted(resp: Any) -> str:
    """Read a chat stream until the upstream task exists; the job's id."""
    job_id = ""
    async with asyncio.timeout(30):
        while True:
            line = await resp.content.readline()
            assert line, "the stream ended before the task was submitted"
            if not line.startswith(b"data: {"):
                continue
            frame = orjson.loads(line[6:])
            job_id = job_id or frame.get("job_id", "")
            step = frame["choices"][0]["delta"].get("reasoning_content") or {}
            if step.get("message", "").endswith("generation started"):
                return str(job_id)


async def test_live_figures_after_real_jobs(make_client: Any, sim: Sim) -> None:
    client = await make_client(metrics={"token": TOKEN})
    # Long-lived tokens: the clock jumps past the video below.
    a, b = sim.state.add_account(at_ttl=1e6), sim.state.add_account(at_ttl=1e6)
    await add_token(client, a)
    await add_token(client, b)
    # The first create meets a 429: that account cools down and the job moves to the other.
    sim.state.inject("POST", "/backend/nf/create", "429")
    sim.state.settings.video_seconds = 5_000  # runs until the clock is moved below
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    assert resp.status == 200
    job_id = await _until_submitted(resp)

    live = await scrape(client)
    assert value(live, "sora2api_sse_streams_open") == 1
    assert value(live, "sora2api_accounts", provider="sora", state="cooling") == 1
    assert value(live, "sora2api_accounts", provider="sora", state="active") == 1
    assert value(live, "sora2api_upstream_errors_total", provider="sora", kind="rate_limited") == 1
    assert total(live, "sora2api_jobs", state="in_progress", provider="sora") == 1
    assert value(live, "sora2api_queue_depth", kind="video") == 0
    assert total(live, "sora2api_upstream_request_seconds_count", provider="sora") >= 3
    assert value(live, "sora2api_upstream_request_seconds_count", provider="sora", outcome="4xx")
    assert value(live, "sora2api_queue_wait_seconds_count", kind="video") >= 2
    assert value(live, "sora2api_webhook_backlog") == 0

    sim.state.advance(6_000)
    async with asyncio.timeout(30):
        rest = await resp.read()
    assert b"data: [DONE]" in rest
    row = await client.app[keys.JOBS].get(job_id)
    assert row.status == "completed"

    # A refused create fails the next job: the account is not to blame, no switch.
    sim.state.inject("POST", "/backend/nf/create", "400_invalid")
    failed = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "y"), headers=KEY
    )
    assert failed.status == 502, await failed.text()

    after = await scrape(client)
    job = {"kind": "video", "provider": "sora", "model": row.model}
    assert value(after, "sora2api_jobs", state="completed", **job) == 1
    assert value(after, "sora2api_jobs", state="failed", **job) == 1
    assert total(after, "sora2api_jobs", state="in_progress") == 0
    assert value(after, "sora2api_upstream_errors_total", provider="sora", kind="bad_request") == 1
    assert value(after, "sora2api_sse_streams_open") == 0
    assert value(after, "sora2api_media_cache_bytes") > 0
    assert value(after, "sora2api_media_cache_files") >= 1
    # The simulator saw exactly the creates the figures count: one 429, one success, one 400.
    creates = [
        e for e in sim.state.journal if e.method == "POST" and e.path == "/backend/nf/create"
    ]
    assert len(creates) == 3


async def test_two_apps_in_one_process_count_apart(make_client: Any, sim: Sim) -> None:
    first = await make_client(metrics={"token": TOKEN})
    second = await make_client(metrics={"token": TOKEN})
    await add_token(first, sim.state.add_account())
    sim.state.inject("POST", "/backend/nf/create", "400_invalid")
    resp = await first.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    assert resp.status == 502
    one, two = await scrape(first), await scrape(second)
    assert total(one, "sora2api_upstream_errors_total") == 1
    assert total(two, "sora2api_upstream_errors_total") == 0


async def test_a_provider_call_is_timed_and_its_429_counted_under_its_name(
    make_client: Any, sim: Sim
) -> None:
    client = await make_client(metrics={"token": TOKEN})
    gw = gateway(sim)
    gw.settings.run_seconds = 60.0
    for name in ("gw1", "gw2"):
        await add_gateway_account(client, sim, gw.add_account("openai", name=name))
    fault = {"provider": "openai", "error": "rate_limit", "method": "POST", "path": CREATE}
    await control(sim, "/_sim/providers/faults", fault)
    resp = await client.post("/v1/videos", json={"model": "sora-2", "prompt": "p"}, headers=KEY)
    assert resp.status == 200, await resp.text()
    done = await wait_video(client, (await resp.json())["id"])
    assert done["status"] == "completed", done
    assert [c.status for c in sim.state.calls("POST", CREATE)] == [429, 200]

    got = await scrape(client)
    assert value(got, "sora2api_upstream_errors_total", provider="openai", kind="rate_limited") == 1
    seconds = "sora2api_upstream_request_seconds_count"
    assert value(got, seconds, provider="openai", outcome="4xx") == 1
    assert value(got, seconds, provider="openai", outcome="2xx") >= 2  # the create, its polls
    assert total(got, seconds, provider="sora") == 0  # no Sora account, no Sora call
    assert value(got, "sora2api_accounts", provider="openai", state="cooling") == 1
    assert value(got, "sora2api_accounts", provider="openai", state="active") == 1
    assert total(got, "sora2api_jobs", state="completed", provider="openai") == 1
