"""The admin password (issue 9, item 9): scrypt at OWASP cost, run off the event loop, and old
hashes upgraded at the next successful login."""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from sora2api import auth, keys

from .conftest import KEY, Sim
from .helpers import add_token, chat

MakeClient = Callable[..., Awaitable[TestClient]]
PASSWORD = "a-better-password"
ROOT = Path(__file__).resolve().parent.parent


def test_the_service_default_is_owasp_cost() -> None:
    # In a fresh interpreter: the suite's conftest lowers the cost in this one.
    code = "from sora2api import auth; c = auth.hash_cost; print(c.n, c.r, c.p)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.stdout.split() == [str(2**17), "8", "1"], out
    assert auth.OWASP_COST == auth.ScryptCost(n=2**17, r=8, p=1)


async def _stored(client: TestClient) -> dict[str, object]:
    record = await client.app[keys.SETTINGS].get_value("admin.password")
    assert isinstance(record, dict)
    return record


async def test_login_at_owasp_cost_stores_and_checks_the_owasp_hash(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "hash_cost", auth.OWASP_COST)
    client = await make_client(auth={"admin_password": PASSWORD})
    record = await _stored(client)
    assert (record["n"], record["r"], record["p"]) == (2**17, 8, 1)
    expected = hashlib.scrypt(
        PASSWORD.encode(),
        salt=bytes.fromhex(str(record["salt"])),
        n=2**17,
        r=8,
        p=1,
        maxmem=256 * 1024 * 1024,
        dklen=32,
    ).hex()
    assert record["hash"] == expected
    assert "file" not in record  # no fast (unsalted) fingerprint of the password is stored
    resp = await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
    assert resp.status == 200, await resp.text()


async def test_a_legacy_hash_is_upgraded_at_the_next_successful_login(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(auth={"admin_password": PASSWORD})
    settings = client.app[keys.SETTINGS]
    # A record as the previous release stored it: scrypt N=2^14, no cost fields.
    salt = bytes(range(16))
    legacy = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()
    fingerprint = hashlib.sha256(f"admin\0{PASSWORD}".encode()).hexdigest()
    await settings.set_value(
        "admin.password",
        {
            "username": "admin",
            "salt": salt.hex(),
            "hash": legacy,
            "changed": False,
            "file": fingerprint,
            "default": False,
        },
    )
    await client.app[keys.AUTH].load()  # what a restart does
    assert "file" not in await _stored(client)  # the fast fingerprint is dropped at start-up
    monkeypatch.setattr(auth, "hash_cost", auth.OWASP_COST)

    wrong = await client.post("/api/login", json={"username": "admin", "password": "nope-nope"})
    assert wrong.status == 401
    assert (await _stored(client))["hash"] == legacy  # a failed login changes nothing

    resp = await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    record = await _stored(client)
    assert (record["n"], record["r"], record["p"]) == (2**17, 8, 1)
    assert record["hash"] != legacy and record["changed"] is False
    # The upgraded hash still opens the panel, after a restart too.
    again = await make_client(auth={"admin_password": PASSWORD})
    resp = await again.post("/api/login", json={"username": "admin", "password": PASSWORD})
    assert resp.status == 200, await resp.text()


async def test_a_burst_of_logins_does_not_stall_a_stream(
    make_client: MakeClient, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.01
    client = await make_client(
        server={"keepalive_interval": interval},
        auth={"admin_password": PASSWORD, "login_attempts_per_minute": 100},
    )
    # A cost where one hash takes several keep-alive intervals (N=2^15: about 0.08 s, 32 MiB).
    monkeypatch.setattr(auth, "hash_cost", auth.ScryptCost(n=2**15, r=8, p=1))
    await client.app[keys.AUTH].change_password(PASSWORD, PASSWORD + "!")
    password = PASSWORD + "!"
    sim.state.settings.video_seconds = 10**6  # the job stays in progress for the whole test
    await add_token(client, sim.state.add_account())

    loop = asyncio.get_running_loop()
    frames: list[float] = []
    streaming = asyncio.Event()
    resp = await client.post(
        "/v1/chat/completions",
        json=chat("sora-video-landscape-10s", "a lighthouse", stream=True),
        headers=KEY,
    )
    assert resp.status == 200

    async def read() -> None:
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                _, buffer = buffer.split(b"\n\n", 1)
                frames.append(loop.time())
                if len(frames) >= 3:
                    streaming.set()

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(30):
            await streaming.wait()
        done: list[float] = []

        async def login() -> None:
            r = await client.post("/api/login", json={"username": "admin", "password": password})
            assert r.status == 200, await r.text()
            done.append(loop.time())

        start = loop.time()
        async with asyncio.timeout(120):
            await asyncio.gather(*(login() for _ in range(20)))
        end = loop.time()
    finally:
        reader.cancel()
        resp.close()
    # Frames that arrived between consecutive login completions: while a hash held the event
    # loop, a stream got at most the one keep-alive that was overdue when it let go.
    marks = [start, *sorted(done)]
    per_login = [sum(a < t <= b for t in frames) for a, b in zip(marks, marks[1:], strict=False)]
    in_burst = sum(start < t <= end for t in frames)
    expected = (end - start) / interval
    assert statistics.median(per_login) >= 3, per_login
    assert in_burst >= 0.2 * expected, (in_burst, expected)
