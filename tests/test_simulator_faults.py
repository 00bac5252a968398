"""Fault injection, media host behaviours and the /_sim/ control API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api.simulator import SIM_STATE, create_simulator
from sora2api.simulator.faults import CREATED_KINDS, FAULT_KINDS

from .sim_helpers import Sim, video_body

ClientMaker = Callable[..., Awaitable[TestClient]]
PENDING = "/backend/nf/pending"


@pytest.fixture
async def fake(aiohttp_client: ClientMaker) -> Sim:
    app = create_simulator(time_scale=0.01, seed=3)
    state = app[SIM_STATE]
    client = await aiohttp_client(app)
    return Sim(client, state, state.add_account("carol@example.com"))


async def _raw(fake: Sim, path: str = PENDING, token: str | None = None) -> tuple[int, str, bytes]:
    headers = {
        "Authorization": f"Bearer {token or fake.account.access_token}",
        "Content-Type": "application/json",
    }
    async with fake.client.get(path, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.read()


def _code(raw: bytes) -> Any:
    return orjson.loads(raw)["error"]["code"]


RESPONSE_FAULTS: dict[str, Callable[[int, str, bytes], bool]] = {
    "401_invalidated": lambda s, t, b: s == 401 and _code(b) == "token_invalidated",
    "401_expired": lambda s, t, b: s == 401 and _code(b) == "token_expired",
    "401_unparseable": lambda s, t, b: s == 401 and b"Could not parse" in b,
    "403_cloudflare": lambda s, t, b: s == 403 and t == "text/html" and b"Just a moment..." in b,
    "403_country": lambda s, t, b: (
        s == 403
        and _code(b) == "unsupported_country_code"
        and orjson.loads(b)["error"]["param"] == "CN"
    ),
    "429": lambda s, t, b: s == 429 and orjson.loads(b)["status"] == 429,
    "429_concurrency": lambda s, t, b: s == 429 and _code(b) == "too_many_concurrent_tasks",
    "heavy_load": lambda s, t, b: (
        s == 429
        and orjson.loads(b)["error"]["message"] == "We're under heavy load, please try again later."
    ),
    "heavy_load_503": lambda s, t, b: s == 503 and b"heavy load" in b,
    "400_sentinel": lambda s, t, b: s == 400 and _code(b) == "sentinel_block",
    "400_invalid": lambda s, t, b: (
        s == 400 and orjson.loads(b)["error"]["message"] == "Unable to process request"
    ),
    "500": lambda s, t, b: s == 500 and orjson.loads(b)["status"] == 500,
    "502_html": lambda s, t, b: s == 502 and t == "text/html",
    "503_empty": lambda s, t, b: s == 503 and b == b"",
    "malformed_json": lambda s, t, b: s == 200 and t == "application/json" and _not_json(b),
    "empty_200": lambda s, t, b: s == 200 and b == b"",
    "missing_id": lambda s, t, b: s == 200 and orjson.loads(b) == {},
    "expired_url": lambda s, t, b: s == 403 and b"AuthenticationFailed" in b,
}


def _not_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return False


@pytest.mark.parametrize("kind", sorted(RESPONSE_FAULTS))
async def test_response_fault_kinds(fake: Sim, kind: str) -> None:
    fake.state.inject("GET", "/backend/nf/pending*", kind)
    status, ctype, body = await _raw(fake)
    assert RESPONSE_FAULTS[kind](status, ctype, body), (status, ctype, body)
    assert fake.state.calls("GET", PENDING)[0].fault == kind
    assert (await _raw(fake))[0] == 200  # times=1: the next call is normal


async def test_every_kind_is_known_and_unknown_kinds_raise(fake: Sim) -> None:
    covered = set(RESPONSE_FAULTS) | {
        "custom",
        "redirect",
        "hang",
        "reset",
        "slow_first_byte",
        "disconnect",
        "length_mismatch",
        "json_error_200",
        "empty_body_200",
        "stall_body",
    }
    # The created_* kinds are covered in test_job_states.py.
    assert covered | CREATED_KINDS == set(FAULT_KINDS)
    with pytest.raises(ValueError):
        fake.state.inject("GET", PENDING, "nope")


async def test_custom_fault_and_param_overrides(fake: Sim) -> None:
    fake.state.inject("GET", PENDING, "custom", status=418, json={"teapot": True})
    fake.state.inject("GET", PENDING, "heavy_load", status=503)
    fake.state.inject("GET", PENDING, "429", code="cf_shield_429")
    assert (await _raw(fake))[::2] == (418, b'{"teapot":true}')
    assert (await _raw(fake))[0] == 503
    status, _, body = await _raw(fake)
    assert status == 429 and _code(body) == "cf_shield_429"


async def test_fault_times_after_and_forever(fake: Sim) -> None:
    fake.state.inject("GET", PENDING, "500", times=2, after=1)
    assert [(await _raw(fake))[0] for _ in range(4)] == [200, 500, 500, 200]
    fake.state.inject("*", "/backend/nf/*", "503_empty", times=None)
    assert [(await _raw(fake))[0] for _ in range(3)] == [503, 503, 503]
    assert (await _raw(fake, "/backend/nf/check"))[0] == 503
    assert (await _raw(fake, "/backend/me"))[0] == 200
    fake.state.clear_faults()
    assert (await _raw(fake))[0] == 200


async def test_fault_per_token_and_per_email(fake: Sim) -> None:
    other = fake.state.add_account("dave@example.com")
    fake.state.inject("GET", PENDING, "401_invalidated", token=other.access_token)
    assert (await _raw(fake))[0] == 200
    assert (await _raw(fake, token=other.access_token))[0] == 401
    fake.state.inject("POST", "/backend/nf/create", "429", email=other.email, times=None)
    assert (await fake.post("/backend/nf/create", video_body(), sentinel=True))[0] == 200
    assert (await fake.post("/backend/nf/create", video_body(), other, sentinel=True))[0] == 429
    cookie = {"Cookie": f"__Secure-next-auth.session-token={other.session_token}"}
    fake.state.inject("GET", "/api/auth/session", "empty_200", token=other.session_token)
    async with fake.client.get("/api/auth/session", headers=cookie) as resp:
        assert resp.status == 200 and await resp.read() == b""


async def test_hang_is_bounded_and_cancellable(fake: Sim) -> None:
    fake.state.inject("GET", PENDING, "hang")
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with fake.client.get(
            PENDING, headers=fake.headers(), timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    assert time.monotonic() - started < 2
    fake.state.inject("GET", PENDING, "hang", seconds=0.1)
    assert (await _raw(fake))[0] == 504


async def test_reset_and_slow_first_byte(fake: Sim) -> None:
    fake.state.inject("POST", "/backend/nf/create", "reset")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fake.post("/backend/nf/create", video_body(), sentinel=True)
    entry = fake.state.calls("POST", "/backend/nf/create")[0]
    assert entry.status == 0 and entry.json["prompt"] == "a dog running"  # the body was read
    assert fake.state.tasks == {}
    fake.state.inject("GET", PENDING, "slow_first_byte", seconds=0.2)
    started = time.monotonic()
    assert (await _raw(fake))[0] == 200
    assert time.monotonic() - started >= 0.2


# -- media -------------------------------------------------------------------------------------


async def _draft(fake: Sim, **scenario: Any) -> dict[str, Any]:
    if scenario:
        fake.state.scenario(**scenario)
    return await fake.finish_video(await fake.create_video())


async def test_media_range_throttle_and_signature(fake: Sim) -> None:
    url = (await _draft(fake, video_bytes=100_000, rate=400_000))["downloadable_url"]
    started = time.monotonic()
    async with fake.client.session.get(url) as resp:
        assert resp.headers["Accept-Ranges"] == "bytes"
        full = await resp.read()
    assert len(full) == 100_000 and time.monotonic() - started >= 0.2
    async with fake.client.session.get(url, headers={"Range": "bytes=10-19"}) as resp:
        assert resp.status == 206 and resp.headers["Content-Range"] == "bytes 10-19/100000"
        assert await resp.read() == full[10:20]
    async with fake.client.session.get(url, headers={"Range": "bytes=-5"}) as resp:
        assert await resp.read() == full[-5:]
    async with fake.client.session.get(url, headers={"Range": "bytes=200000-"}) as resp:
        assert resp.status == 416
    tampered = url.replace("sig=", "sig=0")
    async with fake.client.session.get(tampered) as resp:
        assert resp.status == 403


async def test_media_expiry_after_ttl(fake: Sim) -> None:
    fake.state.settings.media_ttl = 30
    draft = await _draft(fake)
    assert "se=" in draft["url"]
    assert (await fake.download(draft["url"]))[0] == 200
    fake.state.advance(31)
    status, ctype, body = await fake.download(draft["url"])
    assert status == 403 and b"AuthenticationFailed" in body
    fake.state.settings.media_expired_status = 404
    assert (await fake.download(draft["url"]))[0] == 404


async def test_media_faults_disconnect_mismatch_redirect(fake: Sim) -> None:
    url = (await _draft(fake, video_bytes=200_000))["downloadable_url"]
    fake.state.inject("GET", "/media/*", "disconnect", at=50_000)
    with pytest.raises(aiohttp.ClientPayloadError):
        await fake.download(url)
    fake.state.inject("GET", "/media/*", "length_mismatch")
    with pytest.raises(aiohttp.ClientPayloadError):
        await fake.download(url)
    fake.state.inject("GET", "/media/*", "redirect")
    async with fake.client.session.get(url) as resp:
        assert resp.status == 200 and len(await resp.read()) == 200_000
        assert resp.history[0].status == 302 and resp.url.path.startswith("/cdn/media/")
    fake.state.inject("GET", "/media/*", "expired_url", status=404)
    assert (await fake.download(url))[0] == 404
    assert (await fake.download(url))[0] == 200


async def test_media_large_video_from_settings(fake: Sim) -> None:
    fake.state.settings.video_bytes = 3_000_000
    draft = await _draft(fake)
    async with fake.client.session.get(draft["url"]) as resp:
        assert resp.content_length == 3_000_000 and len(await resp.read()) == 3_000_000


# -- control API -------------------------------------------------------------------------------


async def test_control_api_over_http(fake: Sim) -> None:
    c = fake.client
    async with c.post(
        "/_sim/accounts", json={"email": "http@example.com", "plan": "chatgpt_pro", "quota": 2}
    ) as resp:
        assert resp.status == 201
        acct = await resp.json()
    assert acct["email"] == "http@example.com" and acct["access_token"] and acct["refresh_token"]
    async with c.post("/_sim/accounts", json={"email": "http@example.com"}) as resp:
        assert resp.status == 400
    headers = {"Authorization": f"Bearer {acct['access_token']}"}
    async with c.get("/backend/billing/subscriptions", headers=headers) as resp:
        assert (await resp.json())["data"][0]["plan"]["id"] == "chatgpt_pro"

    fault = {
        "method": "GET",
        "path": "/backend/me",
        "kind": "429",
        "times": 1,
        "email": "http@example.com",
    }
    async with c.post("/_sim/faults", json=fault) as resp:
        assert resp.status == 201
    async with c.post("/_sim/faults", json={**fault, "kind": "bogus"}) as resp:
        assert resp.status == 400
    async with c.get("/backend/me", headers=headers) as resp:
        assert resp.status == 429
    async with c.get("/_sim/journal", params={"path": "/backend/me"}) as resp:
        entries = await resp.json()
    assert [(e["status"], e["account_email"], e["fault"]) for e in entries] == [
        (429, "http@example.com", "429")
    ]
    async with c.post("/_sim/faults", json={**fault, "times": None}) as resp:
        assert resp.status == 201
    async with c.delete("/_sim/faults") as resp:
        assert resp.status == 200 and fake.state.faults == []

    async with c.post(
        "/_sim/settings", json={"strict_sentinel": False, "video_seconds": 1}
    ) as resp:
        assert (await resp.json())["strict_sentinel"] is False
    async with c.post("/_sim/settings", json={"nope": 1}) as resp:
        assert resp.status == 400
    async with c.post(
        "/_sim/scenario", json={"outcome": "violation", "email": "http@example.com"}
    ) as resp:
        assert resp.status == 201
    async with c.post("/backend/nf/create", json=video_body(), headers=headers) as resp:
        assert resp.status == 200  # no sentinel needed any more
    async with c.post("/_sim/advance", json={"seconds": 10}) as resp:
        assert resp.status == 200
    async with c.get("/backend/project_y/profile/drafts", headers=headers) as resp:
        assert (await resp.json())["items"][0]["kind"] == "sora_content_violation"
    async with c.get("/_sim/counts") as resp:
        counts = await resp.json()
    assert counts["calls"]["POST /backend/nf/create"] == 1
    assert counts["accounts"]["http@example.com"]["/backend/project_y/profile/drafts"] == 1

    async with c.post("/_sim/accounts/http@example.com/invalidate") as resp:
        assert resp.status == 200
    async with c.get("/backend/me", headers=headers) as resp:
        assert resp.status == 401
    async with c.post("/_sim/accounts/http@example.com/token", json={"ttl": 60}) as resp:
        fresh = (await resp.json())["access_token"]
    async with c.get("/backend/me", headers={"Authorization": f"Bearer {fresh}"}) as resp:
        assert resp.status == 200
    async with c.delete("/_sim/journal") as resp:
        assert resp.status == 200 and fake.state.journal == []

    async with c.post("/_sim/reset", json={"keep_accounts": True}) as resp:
        assert resp.status == 200
    assert fake.state.settings.strict_sentinel is True and fake.state.tasks == {}
    async with c.get("/backend/me", headers={"Authorization": f"Bearer {fresh}"}) as resp:
        assert resp.status == 200
    async with c.post("/_sim/reset") as resp:
        assert resp.status == 200
    async with c.get("/_sim/accounts") as resp:
        assert await resp.json() == []


async def test_unknown_paths_are_journaled_404s(fake: Sim) -> None:
    assert (await _raw(fake, "/backend/nope"))[0] == 404
    assert fake.state.calls("GET", "/backend/nope")[0].status == 404
