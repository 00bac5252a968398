"""Fuzz every route of the route table with refused input: no 5xx, no hang, the OpenAI error
envelope on every 4xx, nothing sent to Sora's create or upload, and nothing stored lost."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.routes import ROUTES
from sora2api.simulator import mp4_bytes

from .conftest import KEY, Sim
from .fuzz_corpus import Case, cases, setting_refusals
from .fuzz_values import SETTING_VALID
from .helpers import add_token, admin_headers, chat, data_url

SEED = 20261201
REQUESTS = 3000
PER_REQUEST_BOUND = 20.0  # seconds; generous for a loaded machine, still a bound
# Every upstream call that spends quota or stores a file: a refused request must reach none.
SPENDING = ("/backend/nf/create*", "/backend/video_gen", "/backend/uploads")
SPENDING += ("/backend/characters/upload", "/backend/project_y/file/upload")
# Non-GET routes where a request this corpus sends may be answered 200 without changing anything:
# an import reports each bad entry as its own failure, a proxy test reports the proxy unreachable,
# an empty update changes nothing.
HARMLESS_200 = {("POST", "/api/tokens/import"), ("POST", "/api/tokens/test-proxy")}
HARMLESS_200 |= {("PUT", "/api/tokens/{id}"), ("POST", "/api/tokens/{id}/update")}


async def _finish(client: TestClient, job_id: str) -> None:
    run = client.app[keys.JOBS].run_of(job_id)
    if run is not None:
        await asyncio.wait_for(run.done.wait(), 60)


async def _seed_state(client: TestClient, sim: Sim) -> dict[str, list[str]]:
    """Two tokens, a completed image, a completed video, a failed job and a character."""
    token_ids = [str(await add_token(client, sim.state.add_account())) for _ in range(2)]
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "a cat"), headers=KEY)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/videos", json={"prompt": "a dog", "seconds": "10"}, headers=KEY)
    assert resp.status == 200, await resp.text()
    await _finish(client, (await resp.json())["id"])
    sim.state.scenario("fail", target="image", message="render farm on fire")
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    assert resp.status == 502, await resp.text()
    character = {"name": "Kitty", "video": data_url(mp4_bytes(), "video/mp4")}
    resp = await client.post("/v1/videos/characters", json=character, headers=KEY)
    assert resp.status == 200, await resp.text()
    await _finish(client, (await resp.json())["id"])
    admin = await admin_headers(client)
    resp = await client.post("/api/admin/keys", json={"name": "seeded"}, headers=admin)
    assert resp.status == 201, await resp.text()
    chars = (await (await client.get("/api/characters", headers=admin)).json())["characters"]
    assert chars, "the seed character was not stored"
    jobs = (await (await client.get("/api/jobs", headers=admin)).json())["jobs"]
    assert sorted(j["status"] for j in jobs) == ["completed", "completed", "completed", "failed"]
    return {
        "token_ids": token_ids,
        "char_ids": [str(c["id"]) for c in chars],
        "job_ids": [j["id"] for j in jobs],
    }


async def _snapshot(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    """Everything stored, as the admin listings show it."""
    out: dict[str, Any] = {}
    for path, headers in [
        ("/api/tokens", KEY),
        ("/api/admin/settings", admin),
        ("/api/jobs?limit=500", admin),
        ("/api/characters?include_deleted=true", admin),
        ("/v1/videos?limit=100", KEY),
        ("/api/admin/apikey?reveal=1", admin),
        ("/api/admin/keys", admin),
    ]:
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, (path, await resp.text())
        out[path] = await resp.json()
    return out


def _headers(case: Case, admin: dict[str, str], rng: random.Random) -> dict[str, str]:
    headers = dict(case.headers)
    if case.auth == "key":
        headers.update(KEY)
    elif case.auth == "admin":
        headers.update(admin)
    elif case.auth == "bogus":
        headers.update(
            rng.choice(
                [
                    {"Authorization": "Bearer wrong-key"},
                    {"Authorization": "Basic YWRtaW46YWRtaW4="},
                    {"Authorization": "Bearer " + "x" * 4000},
                    {"Authorization": "Bearer \u00b2".encode().decode("latin-1")},
                    {"Cookie": "sora2api_session=forged"},
                ]
            )
        )
    return headers


def _envelope_problem(status: int, content_type: str, raw: bytes) -> str | None:
    """Why a 4xx body is not the OpenAI error envelope, or None when it is."""
    if content_type != "application/json":
        return f"content type {content_type}"
    try:
        error = orjson.loads(raw)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"body {raw[:200]!r}"
    if not isinstance(error, dict) or not set(error) >= {"message", "type", "code", "param"}:
        return f"error {error!r}"
    if not isinstance(error["message"], str) or not error["message"].strip():
        return f"empty message in {error!r}"
    return None


def _route_of(case: Case) -> str:
    """The route-table path a fuzzed URL was made from (for grouping the report)."""
    parts = case.path.split("?")[0].strip("/").split("/")
    for route in ROUTES:
        template = route.path.strip("/").split("/")
        if route.method == case.method and len(template) == len(parts):
            if all(t == p or t.startswith("{") for t, p in zip(template, parts, strict=True)):
                return route.path
    return case.path


async def test_fuzz_every_route(client: TestClient, sim: Sim) -> None:
    seeded = await _seed_state(client, sim)
    admin = await admin_headers(client)
    described = (await _snapshot(client, admin))["/api/admin/settings"]["settings"]
    corpus = cases(SEED, REQUESTS, settings={s["key"]: s for s in described}, **seeded)
    assert {(r.method, r.path) for r in ROUTES} <= {(c.method, _route_of(c)) for c in corpus}
    before = await _snapshot(client, admin)
    sim.state.clear_journal()

    rng = random.Random(SEED)
    limit = asyncio.Semaphore(8)
    server_errors: list[str] = []
    hangs: list[str] = []
    bad_envelopes: list[str] = []
    accepted: list[str] = []
    statuses: Counter[int] = Counter()

    async def send(case: Case) -> None:
        headers = _headers(case, admin, rng)
        async with limit:
            try:
                async with asyncio.timeout(PER_REQUEST_BOUND):
                    resp = await client.request(
                        case.method, case.path, data=case.body, headers=headers
                    )
                    raw = await resp.read()
            except TimeoutError:
                hangs.append(case.describe())
                return
        statuses[resp.status] += 1
        if resp.status >= 500:
            server_errors.append(f"{resp.status} {case.describe()} -> {raw[:300]!r}")
        elif resp.status >= 400:
            problem = _envelope_problem(resp.status, resp.content_type, raw)
            if problem:
                bad_envelopes.append(f"{resp.status} {case.describe()}: {problem}")
        elif case.method != "GET" and (case.method, _route_of(case)) not in HARMLESS_200:
            accepted.append(f"{resp.status} {case.describe()} -> {raw[:200]!r}")

    await asyncio.gather(*(send(c) for c in corpus))

    assert sum(statuses.values()) + len(hangs) == len(corpus)
    problems = {
        "5xx": server_errors,
        "hangs": hangs,
        "no error envelope": bad_envelopes,
        "refused-by-construction requests accepted": accepted,
    }
    report = [f"{name}: {len(found)}\n" + "\n".join(found[:25]) for name, found in problems.items()]
    assert not any(problems.values()), "\n".join(report)
    spent = [e for glob in SPENDING for e in sim.state.calls("POST", glob)]
    assert not spent, [(e.method, e.path, e.json) for e in spent]
    after = await _snapshot(client, admin)
    for path, value in before.items():
        assert after[path] == value, f"{path} changed under fuzz"
    # The README's reliability figures come from this line (pytest -s).
    print(
        f"\nfuzz: {len(corpus)} requests, 5xx {len(server_errors)}, hangs {len(hangs)}, "
        f"no envelope {len(bad_envelopes)}, creates or uploads reached {len(spent)}"
    )


@pytest.mark.parametrize(
    "path", ["/v1/videos", "/v1/images/generations", "/v1/images/edits", "/v1/videos/characters"]
)
async def test_a_form_part_with_broken_headers_is_a_named_400(
    client: TestClient, path: str
) -> None:
    headers = {**KEY, "Content-Type": "multipart/form-data; boundary=xyz"}
    resp = await client.post(path, data=b"--xyz\r\nnot a part\r\n", headers=headers)
    assert resp.status == 400, await resp.text()
    assert "form body could not be parsed" in (await resp.json())["error"]["message"]


async def test_every_setting_refuses_out_of_range_and_bad_formats(client: TestClient) -> None:
    """Each refused value of each setting, not a sample: a 400 naming the key, nothing saved."""
    admin = await admin_headers(client)
    before = await (await client.get("/api/admin/settings", headers=admin)).json()
    sent = 0
    for setting in before["settings"]:
        for value in setting_refusals(setting):
            for values in ({setting["key"]: value}, {**SETTING_VALID, setting["key"]: value}):
                resp = await client.put(
                    "/api/admin/settings", json={"values": values}, headers=admin
                )
                raw = await resp.read()
                assert resp.status == 400, (setting["key"], value, raw[:300])
                problem = _envelope_problem(resp.status, resp.content_type, raw)
                assert problem is None, problem
                param = orjson.loads(raw)["error"]["param"]
                # A rule between two settings names the one it constrains.
                assert param in (setting["key"], "pool.cooldown_max"), (value, raw[:300])
                sent += 1
    assert sent > 500
    after = await (await client.get("/api/admin/settings", headers=admin)).json()
    assert after == before
