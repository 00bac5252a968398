"""The token pool under load: least-busy + round robin, FIFO queue, cancellations, reactions."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.errors import UnavailableError
from sora2api.pool import TokenPool
from sora2api.transitions import admin
from sora2api.upstream.errors import Kind, UpstreamFailure

from .conftest import Sim

MakeClient = Callable[..., Awaitable[TestClient]]


async def insert(client: TestClient, n: int = 1, **values: Any) -> list[int]:
    """Rows straight into the store (pool-level tests need no upstream), then into the pool."""
    store, pool = client.app[keys.STORE], client.app[keys.POOL]
    ids = []
    for _ in range(n):
        row = {
            "access_token": "at-" + str(random.random()),
            "created_at": time.time(),
            "sora2_supported": 1,
            "at_expires": time.time() + 86400,
            **values,
        }
        tid = await store.insert("tokens", row)
        await pool.reload(tid)
        ids.append(tid)
    return ids


async def pool_of(make_client: MakeClient, **sections: Any) -> tuple[TestClient, TokenPool]:
    client = await make_client(**sections)
    return client, client.app[keys.POOL]


async def test_least_busy_then_round_robin(make_client: MakeClient) -> None:
    client, pool = await pool_of(make_client)
    ids = await insert(client, 3)
    order = []
    for _ in range(6):
        async with pool.lease("video") as lease:
            order.append(lease.token_id)
    assert order == ids + ids  # idle tokens take turns
    async with pool.lease("video") as a, pool.lease("video") as b:
        # While one token is busy, the next lease goes to a less busy one.
        assert a.token_id != b.token_id
        async with pool.lease("video") as c:
            assert len({a.token_id, b.token_id, c.token_id}) == 3
            async with pool.lease("video") as d:
                assert pool.busy(d.token_id, "video") == 2
    assert all(pool.busy(i, "video") == 0 for i in ids)


async def test_fifo_queue_and_timeout(make_client: MakeClient) -> None:
    client, pool = await pool_of(
        make_client, generation={"queue_timeout": 0.3}, pool={"video_concurrency": 1}
    )
    (tid,) = await insert(client)
    got: list[str] = []
    positions: list[int] = []

    async def job(name: str, hold: float) -> None:
        async def queued(pos: int) -> None:
            positions.append(pos)

        async with pool.lease("video", on_queued=queued):
            got.append(name)
            await asyncio.sleep(hold)

    first = asyncio.create_task(job("a", 0.1))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(job(n, 0.02)) for n in "bcd"]
    await asyncio.gather(first, *waiters)
    assert got == ["a", "b", "c", "d"] and positions == [1, 2, 3]

    # Nobody frees the slot within queue_timeout: the waiter fails with the reason.
    async with pool.lease("video"):
        with pytest.raises(UnavailableError, match=r"stayed busy for 0.3 s.*1 busy"):
            async with pool.lease("video"):
                pass
    assert pool.busy(tid, "video") == 0


async def test_50_concurrent_leases_with_random_cancellations(make_client: MakeClient) -> None:
    client, pool = await pool_of(
        make_client, generation={"queue_timeout": 10.0}, pool={"video_concurrency": 2}
    )
    ids = await insert(client, 3)
    await insert(client, 1, video_concurrency=1)
    limits = {
        i: pool.state(i).limit("video", client.app[keys.SETTINGS].current.pool)
        for i in pool._tokens
    }
    rng = random.Random(7)
    served = 0
    over_limit: list[int] = []

    async def job() -> None:
        nonlocal served
        async with pool.lease("video") as lease:
            if pool.busy(lease.token_id, "video") > limits[lease.token_id]:
                over_limit.append(lease.token_id)
            served += 1
            await asyncio.sleep(rng.uniform(0, 0.03))

    tasks = [asyncio.create_task(job()) for _ in range(50)]
    for _ in range(20):
        await asyncio.sleep(rng.uniform(0, 0.01))
        rng.choice(tasks).cancel()  # a client disconnect, queued or running
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results), results
    assert cancelled > 0 and served > 0 and not over_limit
    assert {i: pool.busy(i, "video") for i in pool._tokens} == dict.fromkeys(pool._tokens, 0)
    assert not pool._waiters
    del ids


async def test_unavailable_reason_names_every_category(make_client: MakeClient) -> None:
    client, pool = await pool_of(make_client)
    until = time.time() + 600
    await insert(client, 2, status="expired")
    await insert(client, 1, status="disabled", status_reason="disabled by admin")
    await insert(client, 1, cooldown_until=until, cooldown_reason="429")
    await insert(client, 1, sora2_supported=0)
    with pytest.raises(UnavailableError) as info:
        async with pool.lease("video"):
            pass
    hhmm = time.strftime("%H:%M", time.localtime(until))
    assert info.value.message == (
        "No token available for video generation: 2 expired, 1 disabled, "
        f"1 cooling down until {hhmm}, 1 without Sora-2"
    )
    assert info.value.status == 503


async def test_waiter_fails_fast_when_its_last_token_goes(make_client: MakeClient) -> None:
    client, pool = await pool_of(
        make_client, generation={"queue_timeout": 30.0}, pool={"video_concurrency": 1}
    )
    (tid,) = await insert(client)
    async with pool.lease("video"):
        waiter = asyncio.create_task(pool.lease("video").__aenter__())
        await asyncio.sleep(0.01)
        await pool.transition(tid, admin(False, time.time()))
        with pytest.raises(UnavailableError, match="1 disabled"):
            async with asyncio.timeout(1):
                await waiter
    assert pool.busy(tid, "video") == 0


async def reported(
    client: TestClient, sim: Sim, tid: int, fault: str, **params: Any
) -> dict[str, Any]:
    """Make the simulator fail one /me call of this token's AT, classify it, report it."""
    pool = client.app[keys.POOL]
    at = pool.state(tid).row["access_token"]
    sim.state.inject("GET", "/backend/me", fault, token=at, **params)
    with pytest.raises(UpstreamFailure) as info:
        await client.app[keys.CLIENT].me(at)
    await pool.report_failure(tid, info.value)
    return pool.state(tid).row


async def real_token(client: TestClient, sim: Sim) -> int:
    acc = sim.state.add_account()
    (tid,) = await insert(client, access_token=acc.access_token, email=acc.email)
    return tid


async def test_429_cools_one_token_and_the_other_serves(make_client: MakeClient, sim: Sim) -> None:
    client, pool = await pool_of(make_client, pool={"cooldown_base": 60.0, "cooldown_max": 100.0})
    t1, t2 = await real_token(client, sim), await real_token(client, sim)
    before = time.time()
    row = await reported(client, sim, t1, "429")
    assert row["status"] == "active" and row["consecutive_errors"] == 0
    assert row["cooldown_until"] == pytest.approx(before + 60, abs=2)
    assert "Rate limited by Sora (HTTP 429)" in row["cooldown_reason"]
    for _ in range(3):
        async with pool.lease("video") as lease:
            assert lease.token_id == t2
    # Backoff: the next one doubles, capped at cooldown_max; heavy load is treated the same.
    row = await reported(client, sim, t1, "heavy_load")
    assert row["cooldown_until"] == pytest.approx(time.time() + 100, abs=2)
    assert row["status"] == "active" and row["cooldown_level"] == 2
    assert len(sim.state.calls("GET", "/backend/me")) == 2


@pytest.mark.parametrize(
    ("fault", "status", "cooled", "errors"),
    [
        ("401_invalidated", "invalid", False, 0),
        ("401_unparseable", "invalid", False, 0),
        ("401_expired", "expired", False, 0),
        ("403_country", "invalid", False, 0),
        ("429", "active", True, 0),
        ("429_concurrency", "active", True, 0),
        ("heavy_load", "active", True, 0),
        ("403_cloudflare", "active", True, 0),
        ("500", "active", False, 1),
        ("502_html", "active", False, 1),
        ("400_sentinel", "active", False, 1),
        ("400_invalid", "active", False, 0),
    ],
)
async def test_reaction_table(
    make_client: MakeClient, sim: Sim, fault: str, status: str, cooled: bool, errors: int
) -> None:
    client, _ = await pool_of(make_client)
    tid = await real_token(client, sim)
    row = await reported(client, sim, tid, fault)
    assert row["status"] == status
    assert bool(row.get("cooldown_until")) is cooled
    assert row["consecutive_errors"] == errors
    if status != "active":
        assert row["status_reason"] and row["status_at"]


async def test_only_unexplained_errors_reach_the_ban(make_client: MakeClient, sim: Sim) -> None:
    client, pool = await pool_of(make_client, pool={"error_ban_threshold": 3})
    tid = await real_token(client, sim)
    for _ in range(5):
        row = await reported(client, sim, tid, "429")
    assert row["status"] == "active" and row["consecutive_errors"] == 0
    await pool.report_success(tid, "video")
    for _ in range(2):
        row = await reported(client, sim, tid, "500")
    assert row["status"] == "active" and row["consecutive_errors"] == 2
    await pool.report_success(tid, "video")
    assert pool.state(tid).row["consecutive_errors"] == 0
    for _ in range(3):
        row = await reported(client, sim, tid, "500")
    assert row["status"] == "disabled"
    assert row["status_reason"].startswith(
        "3 consecutive unexplained errors; last: Sora server error (HTTP 500)"
    )


def test_reactions_cover_every_kind() -> None:
    from sora2api.upstream.errors import REACTIONS

    assert set(REACTIONS) == set(Kind)
    assert (
        REACTIONS[Kind.RATE_LIMITED][0] == "cooldown"
        and REACTIONS[Kind.HEAVY_LOAD][0] == "cooldown"
    )
