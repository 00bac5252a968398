"""Token status has one writer: admin actions, tests, refreshes and reactions never undo each other.

Ordering is forced with a gate in front of the simulator: a held upstream call is released only
after the test has done what must happen "meanwhile" (an admin disable, a cooldown).
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sora2api import keys
from sora2api.config import PoolConfig
from sora2api.simulator import SIM_STATE, Account, create_simulator
from sora2api.store import Store
from sora2api.store.migrations import MIGRATIONS
from sora2api.transitions import ADMIN_DISABLED, probed, reacted, refresh_failed, rejected
from sora2api.upstream.errors import Kind, UpstreamFailure

from .conftest import KEY, Sim
from .helpers import admin_headers

MakeClient = Callable[..., Awaitable[TestClient]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BOUND = 10.0  # seconds any single wait in this file may take on a loaded machine


@dataclass(slots=True)
class Hold:
    """One upstream request held at the gate until `release` is set."""

    method: str
    path: str
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def reached(self) -> None:
        async with asyncio.timeout(BOUND):
            await self.arrived.wait()


class Gate:
    """A middleware in front of the simulator that holds chosen requests (each hold once)."""

    def __init__(self) -> None:
        self.holds: list[Hold] = []

    def hold(self, method: str, path: str) -> Hold:
        h = Hold(method, path)
        self.holds.append(h)
        return h

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for h in self.holds:
            if h.method == request.method and fnmatch.fnmatchcase(request.path, h.path):
                self.holds.remove(h)
                h.arrived.set()
                async with asyncio.timeout(BOUND):
                    await h.release.wait()
                break
        return await handler(request)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def sim(aiohttp_server: Callable[..., Awaitable[TestServer]], gate: Gate) -> Sim:
    """The simulator with the gate outermost, so a held request also delays its faults."""
    app = create_simulator(time_scale=0.01)
    app.middlewares.insert(0, gate.middleware)
    app[SIM_STATE].settings.image_seconds = 20
    server = await aiohttp_server(app)
    return Sim(server, app[SIM_STATE])


# -- helpers ------------------------------------------------------------------------------------------


async def add(client: TestClient, status: int = 201, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/tokens", json=body, headers=KEY)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def token_view(client: TestClient, tid: int) -> dict[str, Any]:
    resp = await client.get(f"/api/tokens/{tid}", headers=KEY)
    assert resp.status == 200
    return await resp.json()


async def post(
    client: TestClient, path: str, headers: dict[str, str], status: int = 200
) -> dict[str, Any]:
    resp = await client.post(path, json={}, headers=headers)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def assert_consistent(client: TestClient) -> None:
    """The pool's in-memory rows are exactly what the database holds."""
    rows = await client.app[keys.STORE].fetchall("SELECT * FROM tokens ORDER BY id")
    assert {t.id: dict(t.row) for t in client.app[keys.POOL].tokens()} == {r["id"]: r for r in rows}


async def wait_for(cond: Callable[[], bool]) -> None:
    for _ in range(int(BOUND / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {BOUND:g} s")


async def generate_image(client: TestClient) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/v1/images/generations", json={"prompt": "a lighthouse at dusk"}, headers=KEY
    )
    return resp.status, await resp.json()


def spend(sim: Sim, acc: Account) -> str:
    """Use the account's refresh token elsewhere (another install did): it is dead from now on."""
    spent = acc.refresh_token
    sim.state.refresh(spent, acc.client_id)
    assert acc.refresh_token != spent
    return spent


# -- item 4: an admin decision made during a slow upstream call stands ----------------------------------


async def test_admin_disable_during_a_successful_refresh_stays(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account(at_ttl=30 * 86400)
    tid = (await add(client, token=acc.access_token, st=acc.session_token))["token"]["id"]
    admin = await admin_headers(client)
    # The token is expired (a 401 from /me): a successful refresh would revive it...
    sim.state.inject("GET", "/backend/me", "401_expired")
    assert (await post(client, f"/api/tokens/{tid}/test", KEY))["status"] == "expired"
    old_at = client.app[keys.POOL].state(tid).row["access_token"]
    held = gate.hold("GET", "/api/auth/session")
    refresh = asyncio.create_task(client.post(f"/api/tokens/{tid}/refresh", headers=admin))
    await held.reached()
    # ...but the admin disables it while the refresh waits for the auth host.
    disabled = await post(client, f"/api/tokens/{tid}/disable", admin)
    assert disabled["token"]["status"] == "disabled"
    held.release.set()
    resp = await asyncio.wait_for(refresh, BOUND)
    body = await resp.json()
    assert resp.status == 200 and body["ok"] is True and body["status"] == "disabled"
    tok = await token_view(client, tid)
    assert tok["status"] == "disabled" and tok["status_reason"] == "disabled by admin"
    # The new access token is still stored: it is valid whatever the admin decided.
    row = client.app[keys.POOL].state(tid).row
    assert row["access_token"] != old_at and sim.state.account_for_token(row["access_token"]) is acc
    assert len(sim.state.calls("GET", "/api/auth/session")) == 1
    await assert_consistent(client)


async def test_admin_disable_during_a_failing_refresh_stays(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account(at_ttl=30 * 86400)
    tid = (await add(client, token=acc.access_token, st=acc.session_token))["token"]["id"]
    admin = await admin_headers(client)
    # The access token has lapsed, so a failed refresh would mark the token expired...
    await client.app[keys.POOL].update_row(tid, {"at_expires": time.time() - 60})
    sim.state.expire_session(acc)
    held = gate.hold("GET", "/api/auth/session")
    refresh = asyncio.create_task(client.post(f"/api/tokens/{tid}/refresh", headers=admin))
    await held.reached()
    await post(client, f"/api/tokens/{tid}/disable", admin)
    held.release.set()
    body = await (await asyncio.wait_for(refresh, BOUND)).json()
    assert body["ok"] is False and body["status"] == "disabled"
    tok = await token_view(client, tid)
    assert tok["status"] == "disabled" and tok["status_reason"] == "disabled by admin"
    # ...the failure is still recorded where the admin can see it.
    assert "Session expired or invalid" in tok["refresh_error"] and tok["refresh_error_at"]
    await assert_consistent(client)


async def test_admin_disable_during_a_successful_test_stays(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    admin = await admin_headers(client)
    sim.state.inject("GET", "/backend/me", "401_invalidated")
    assert (await post(client, f"/api/tokens/{tid}/test", KEY))["status"] == "invalid"
    held = gate.hold("GET", "/backend/me")
    test = asyncio.create_task(client.post(f"/api/tokens/{tid}/test", headers=KEY))
    await held.reached()
    await post(client, f"/api/tokens/{tid}/disable", admin)
    held.release.set()
    body = await (await asyncio.wait_for(test, BOUND)).json()
    assert body["ok"] is True and body["status"] == "disabled"
    tok = await token_view(client, tid)
    assert tok["status"] == "disabled" and tok["status_reason"] == "disabled by admin"
    assert tok["quota_remaining"] == 30  # what the test learned is kept
    await assert_consistent(client)


async def test_admin_enable_during_a_failing_test_lets_the_verdict_land(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    admin = await admin_headers(client)
    await post(client, f"/api/tokens/{tid}/disable", admin)
    sim.state.invalidate(acc)
    held = gate.hold("GET", "/backend/me")
    test = asyncio.create_task(client.post(f"/api/tokens/{tid}/test", headers=KEY))
    await held.reached()
    await post(client, f"/api/tokens/{tid}/enable", admin)
    held.release.set()
    body = await (await asyncio.wait_for(test, BOUND)).json()
    # The admin enabled a token whose access token the upstream has revoked: it is invalid,
    # not "active" because the test started while it was disabled.
    assert body["ok"] is False and body["status"] == "invalid"
    assert (await token_view(client, tid))["status"] == "invalid"
    await assert_consistent(client)


async def test_admin_disable_during_a_readd_stays_and_one_before_it_is_overruled(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    admin = await admin_headers(client)
    held = gate.hold("GET", "/backend/me")
    readd = asyncio.create_task(
        client.post("/api/tokens", json={"token": acc.access_token}, headers=KEY)
    )
    await held.reached()
    await post(client, f"/api/tokens/{tid}/disable", admin)
    held.release.set()
    body = await (await asyncio.wait_for(readd, BOUND)).json()
    assert body["result"] == "updated" and body["token"]["status"] == "disabled"
    assert (await token_view(client, tid))["status_reason"] == "disabled by admin"
    # Re-adding the account after the disable is the newer decision: it is active again.
    again = await add(client, status=200, token=sim.state.mint_access_token(acc))
    assert again["token"]["status"] == "active"
    await assert_consistent(client)


async def test_a_verdict_on_a_replaced_access_token_is_ignored(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    sim.state.invalidate(acc)  # the stored AT dies; a new sign-in gives a working one
    held = gate.hold("GET", "/backend/me")
    test = asyncio.create_task(client.post(f"/api/tokens/{tid}/test", headers=KEY))
    await held.reached()
    # The account is re-added with a fresh access token while the test still waits on the old one.
    fresh = sim.state.mint_access_token(acc)
    await add(client, status=200, token=fresh)
    held.release.set()
    body = await (await asyncio.wait_for(test, BOUND)).json()
    assert body["ok"] is False
    tok = await token_view(client, tid)
    assert tok["status"] == "active"
    assert client.app[keys.POOL].state(tid).row["access_token"] == fresh
    await assert_consistent(client)


async def test_a_401_on_a_replaced_access_token_after_a_video_changes_nothing(
    client: TestClient, sim: Sim, gate: Gate
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    sim.state.invalidate(acc)
    # The job engine re-reads the quota after a video, with the access token it had then.
    held = gate.hold("GET", "/backend/nf/check")
    quota = asyncio.create_task(client.app[keys.TOKENS].refresh_quota(tid))
    await held.reached()
    await add(client, status=200, token=sim.state.mint_access_token(acc))
    held.release.set()
    assert (await asyncio.wait_for(quota, BOUND))["ok"] is False
    assert (await token_view(client, tid))["status"] == "active"
    await assert_consistent(client)


async def test_a_cooldown_set_while_reload_awaits_is_kept(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    pool = client.app[keys.POOL]
    sim.state.inject("GET", "/backend/me", "429")
    with pytest.raises(UpstreamFailure) as info:
        await client.app[keys.CLIENT].me(acc.access_token)
    reload = asyncio.create_task(pool.reload(tid))
    await asyncio.sleep(0)  # the reload is now waiting for its SELECT
    await pool.report_failure(tid, info.value)
    await asyncio.wait_for(reload, BOUND)
    assert (pool.state(tid).row["cooldown_until"] or 0) > time.time()
    await assert_consistent(client)


async def test_concurrent_counters_cooldowns_and_readds_lose_nothing(
    client: TestClient, sim: Sim
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    pool = client.app[keys.POOL]
    sim.state.inject("GET", "/backend/me", "429", times=5, after=0)
    failures = []
    for _ in range(5):
        with pytest.raises(UpstreamFailure) as info:
            await client.app[keys.CLIENT].me(acc.access_token)
        failures.append(info.value)
    readds = [
        client.post("/api/tokens", json={"token": sim.state.mint_access_token(acc)}, headers=KEY)
        for _ in range(3)
    ]
    results = await asyncio.gather(
        *(pool.report_success(tid, "video") for _ in range(20)),
        *(pool.report_failure(tid, f) for f in failures),
        *readds,
    )
    assert all(r.status == 200 for r in results[25:])
    row = pool.state(tid).row
    assert row["video_count"] == 20 and row["cooldown_level"] >= 1
    assert row["status"] == "active"
    await assert_consistent(client)


async def test_a_cancelled_caller_leaves_memory_and_database_together(
    client: TestClient, sim: Sim
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    pool = client.app[keys.POOL]
    job = asyncio.create_task(pool.report_success(tid, "video"))
    await asyncio.sleep(0)  # the write has begun
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    await pool.transition(tid, lambda _row: {})  # runs once the cancelled caller's write is done
    assert pool.state(tid).row["video_count"] == 1
    await assert_consistent(client)


async def test_status_columns_have_one_writer(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    with pytest.raises(ValueError, match="status"):
        await client.app[keys.POOL].update_row(tid, {"status": "active"})


# -- a 429, heavy load or Cloudflare never leaves a token disabled or invalid ---------------------------

TRANSIENT = ("429", "429_concurrency", "heavy_load", "heavy_load_503", "403_cloudflare")


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_transient_faults_during_test_and_refresh(
    make_client: MakeClient, sim: Sim, fault: str
) -> None:
    client = await make_client(pool={"error_ban_threshold": 1})
    acc = sim.state.add_account(at_ttl=30 * 86400)
    tid = (await add(client, token=acc.access_token, rt=acc.refresh_token))["token"]["id"]
    admin = await admin_headers(client)
    rt = client.app[keys.POOL].state(tid).row["refresh_token"]
    sim.state.inject("GET", "/backend/me", fault)
    assert (await post(client, f"/api/tokens/{tid}/test", KEY))["ok"] is False
    sim.state.inject("POST", "/oauth/token", fault)
    assert (await post(client, f"/api/tokens/{tid}/refresh", admin))["ok"] is False
    tok = await token_view(client, tid)
    assert tok["status"] == "active" and tok["available"]["image"] in ("available", "cooling down")
    assert tok["refresh_error"] and tok["has_refresh_token"]
    # A transient failure proves nothing about the refresh token: it is kept and works next time.
    assert client.app[keys.POOL].state(tid).row["refresh_token"] == rt
    assert (await post(client, f"/api/tokens/{tid}/refresh", admin))["ok"] is True
    tok = await token_view(client, tid)
    assert tok["refresh_error"] == "" and tok["refresh_error_at"] is None
    await assert_consistent(client)


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_transient_faults_during_generation(
    make_client: MakeClient, sim: Sim, fault: str
) -> None:
    client = await make_client(pool={"error_ban_threshold": 1})
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    sim.state.inject("POST", "/backend/video_gen", fault, times=None)
    status, _ = await generate_image(client)
    assert status >= 400
    tok = await token_view(client, tid)
    assert tok["status"] == "active" and tok["available"]["image"] == "cooling down"
    await assert_consistent(client)


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_transient_faults_while_adding_by_refresh_token(
    client: TestClient, sim: Sim, fault: str
) -> None:
    known = sim.state.add_account()
    tid = (await add(client, token=known.access_token))["token"]["id"]
    fresh = sim.state.add_account()
    for acc in (known, fresh):
        sim.state.inject("GET", "/backend/me", fault, email=acc.email)
        resp = await client.post("/api/tokens", json={"rt": acc.refresh_token}, headers=KEY)
        assert resp.status == 502, await resp.json()
    # Both rows keep the rotated refresh token, and neither is marked invalid by a rate limit.
    rows = {t.row["email"]: t.row for t in client.app[keys.POOL].tokens()}
    for acc in (known, fresh):
        assert rows[acc.email]["refresh_token"] == acc.refresh_token
        assert rows[acc.email]["status"] == "active", rows[acc.email]["status_reason"]
    assert rows[known.email]["id"] == tid
    await assert_consistent(client)


# -- item 7: a refresh failure does not kill a token whose access token still works -------------------


async def test_refresh_failure_with_a_valid_access_token_keeps_the_token_usable(
    make_client: MakeClient, sim: Sim
) -> None:
    # The access token is inside the refresh window, so the background task refreshes it at once.
    client = await make_client(pool={"refresh_interval": 0.05, "refresh_window": 7200.0})
    acc = sim.state.add_account(at_ttl=3600)
    spent = spend(sim, acc)
    tid = (await add(client, token=acc.access_token, rt=spent))["token"]["id"]
    pool = client.app[keys.POOL]
    await wait_for(
        lambda: (
            pool.state(tid).row.get("refresh_error") or pool.state(tid).row["status"] != "active"
        )
    )
    tok = await token_view(client, tid)
    assert tok["status"] == "active", tok["status_reason"]
    assert tok["refresh_error"].startswith("Refresh failed: refresh token: ")
    assert "already been used" in tok["refresh_error"] and tok["refresh_error_at"]
    # The spent refresh token is dropped: it can never work again, and nothing retries it.
    assert tok["has_refresh_token"] is False
    (call,) = sim.state.calls("POST", "/oauth/token")
    assert call.json["refresh_token"] == spent
    status, body = await generate_image(client)
    assert status == 200, body
    (create,) = sim.state.calls("POST", "/backend/video_gen")
    assert create.headers["authorization"] == f"Bearer {acc.access_token}"
    await client.app[keys.TOKENS].refresh_due()
    assert len(sim.state.calls("POST", "/oauth/token")) == 1
    await assert_consistent(client)


async def test_readding_a_fresh_access_token_to_an_account_with_a_spent_refresh_token(
    make_client: MakeClient, sim: Sim
) -> None:
    client = await make_client(pool={"refresh_window": 7200.0})
    acc = sim.state.add_account(at_ttl=3600)
    spent = spend(sim, acc)
    tid = (await add(client, token=acc.access_token, rt=spent))["token"]["id"]
    admin = await admin_headers(client)
    pool = client.app[keys.POOL]
    # Long ago the access token lapsed and the refresh failed: the token is expired.
    await pool.update_row(tid, {"at_expires": time.time() - 60})
    res = await post(client, f"/api/tokens/{tid}/refresh", admin)
    assert res["ok"] is False and res["status"] == "expired"
    status, body = await generate_image(client)
    assert status == 503 and "1 expired" in body["error"]["message"]
    # The user signs in again and re-adds the account with a fresh access token only.
    again = await add(client, status=200, token=sim.state.mint_access_token(acc))
    assert again["token"]["id"] == tid and again["token"]["status"] == "active"
    assert again["token"]["has_refresh_token"] is False  # the spent one is not kept
    # A refresh pass finds nothing to refresh with and leaves the token alone.
    await client.app[keys.TOKENS].refresh_due()
    assert len(sim.state.calls("POST", "/oauth/token")) == 1
    tok = await token_view(client, tid)
    assert tok["status"] == "active"
    status, body = await generate_image(client)
    assert status == 200, body
    # Re-adding with the account's live refresh token replaces it and clears the old failure.
    again = await add(client, status=200, rt=acc.refresh_token)
    tok = again["token"]
    assert tok["has_refresh_token"] and tok["refresh_error"] == "" and tok["status"] == "active"
    assert pool.state(tid).row["refresh_token"] == acc.refresh_token  # the rotated one
    await assert_consistent(client)


async def test_a_failed_refresh_counts_once_the_access_token_really_expires(
    client: TestClient, sim: Sim
) -> None:
    acc = sim.state.add_account(at_ttl=30 * 86400)
    tid = (await add(client, token=acc.access_token, st=acc.session_token))["token"]["id"]
    admin = await admin_headers(client)
    sim.state.expire_session(acc)
    res = await post(client, f"/api/tokens/{tid}/refresh", admin)
    assert res["ok"] is False and res["status"] == "active"
    tok = await token_view(client, tid)
    assert tok["status"] == "active" and "Session expired or invalid" in tok["refresh_error"]
    assert tok["has_session_token"] is False
    again = await post(client, f"/api/tokens/{tid}/refresh", admin, status=400)
    assert again["error"]["code"] == "no_refresh_credential"
    assert "Session expired or invalid" in again["error"]["message"]
    assert len(sim.state.calls("GET", "/api/auth/session")) == 1
    # When the access token's own expiry passes, the listing says so and why it was not renewed.
    await client.app[keys.POOL].update_row(tid, {"at_expires": time.time() - 1})
    tok = await token_view(client, tid)
    assert tok["status"] == "expired"
    assert "Session expired or invalid" in tok["status_reason"]
    assert tok["status_reason"].endswith("add a fresh one")
    status, body = await generate_image(client)
    assert status == 503 and "1 expired" in body["error"]["message"]


async def test_migration_revives_tokens_an_old_refresh_failure_killed(tmp_path: Path) -> None:
    mine = next(i for i, sql in enumerate(MIGRATIONS) if "refresh_error" in sql)
    path = tmp_path / "old.db"
    old = await Store.open(path, migrations=MIGRATIONS[:mine])
    reason = "Refresh failed: refresh token: invalid_grant"
    for email, expires in (("live@x", time.time() + 3600), ("dead@x", time.time() - 60)):
        await old.insert(
            "tokens",
            {
                "email": email,
                "access_token": "at-" + email,
                "created_at": 1.0,
                "at_expires": expires,
                "status": "expired",
                "status_reason": reason,
                "status_at": 5.0,
            },
        )
    await old.close()
    store = await Store.open(path)
    try:
        rows = {
            r["email"]: r
            for r in await store.fetchall(
                "SELECT email, status, refresh_error, refresh_error_at FROM tokens"
            )
        }
    finally:
        await store.close()
    assert rows["live@x"] == {
        "email": "live@x",
        "status": "active",
        "refresh_error": reason,
        "refresh_error_at": 5.0,
    }
    assert rows["dead@x"]["status"] == "expired" and rows["dead@x"]["refresh_error"] == reason


# -- the rules themselves (pure functions) -----------------------------------------------------------


def _row(**values: Any) -> dict[str, Any]:
    return {
        "access_token": "at-1",
        "status": "active",
        "status_reason": "",
        "refresh_token": "rt-1",
        "session_token": None,
        "at_expires": 2000.0,
        **values,
    }


def test_refresh_failed_drops_only_the_credentials_it_proved_dead() -> None:
    change = refresh_failed("at-1", "Refresh failed: x", {"refresh_token": "rt-1"}, 1000.0)
    assert change(_row())["refresh_token"] is None
    assert "refresh_token" not in change(_row(refresh_token="rt-2"))  # re-added meanwhile
    assert "status" not in change(_row())  # the access token lives until 2000
    lapsed = change(_row(at_expires=900.0))
    assert lapsed["status"] == "expired" and lapsed["status_reason"] == "Refresh failed: x"
    assert "status" not in change(_row(at_expires=900.0, status="disabled"))


def test_verdicts_respect_the_current_row() -> None:
    verdict = rejected("at-1", Kind.TOKEN_INVALID, "401", 1.0)
    assert verdict(_row())["status"] == "invalid"
    assert verdict(_row(access_token="at-2")) == {}
    assert "status" not in verdict(_row(status="disabled", status_reason=ADMIN_DISABLED))
    ok = probed("at-1", {"quota_remaining": 3}, 1.0)
    assert ok(_row(status="invalid"))["status"] == "active"
    assert "status" not in ok(_row(status="disabled", status_reason=ADMIN_DISABLED))
    assert "status" not in ok(_row(status="invalid", access_token="at-2"))


def test_the_error_ban_never_applies_to_a_token_that_is_not_active() -> None:
    cfg = PoolConfig(error_ban_threshold=1)
    ban = reacted(UpstreamFailure(Kind.SERVER, "boom", status=500), cfg, 1.0)
    assert ban(_row())["status"] == "disabled"
    assert "status" not in ban(_row(status="invalid"))
    for kind in (Kind.RATE_LIMITED, Kind.HEAVY_LOAD, Kind.CLOUDFLARE):
        values = reacted(UpstreamFailure(kind, "slow down", status=429), cfg, 1.0)(_row())
        assert "status" not in values and values["cooldown_until"] > 1.0
