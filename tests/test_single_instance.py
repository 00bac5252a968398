"""One process per database (issue 9, item 6): a second instance on the same config is refused
before any start-up work, and the refusal changes nothing (a real second process)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .conftest import API_KEY, Sim

ROOT = Path(__file__).resolve().parent.parent
_TABLES = ("tokens", "jobs", "settings", "admin_sessions", "characters")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(tmp_path: Path, sim: Sim, port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[server]
port = {port}
[auth]
api_key = "{API_KEY}"
admin_password = "a-better-password"
[storage]
db_path = "data/db.sqlite"
media_dir = "data/media"
[upstream]
base_url = "{sim.url}/backend"
session_url = "{sim.url}/api/auth/session"
oauth_url = "{sim.url}/oauth/token"
poll_interval = 0.05
[pool]
refresh_window = 600.0
refresh_interval = 3600.0
"""
    )
    return path


def _snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in _TABLES}


async def _spawn(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sora2api", "--config", str(config), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _wait_healthy(proc: asyncio.subprocess.Process, port: int) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            assert proc.returncode is None, "the first instance exited"
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


async def test_second_instance_is_refused_and_changes_nothing(sim: Sim, tmp_path: Path) -> None:
    port = _free_port()
    config = _write_config(tmp_path, sim, port)
    first = await _spawn(config)
    try:
        await _wait_healthy(first, port)
        account = sim.state.add_account()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://127.0.0.1:{port}/api/tokens",
                json={"token": account.access_token, "rt": account.refresh_token},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as resp:
                assert resp.status == 201, await resp.text()
        db = tmp_path / "data" / "db.sqlite"
        # The access token now expires soon: a start-up refresh pass would spend the refresh
        # token that the running instance holds (it reads the row only at its own start).
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE tokens SET at_expires = ?", (time.time() + 60,))
        before = _snapshot(db)
        rt = account.refresh_token
        sim.state.clear_journal()

        second = await _spawn(config)
        async with asyncio.timeout(60):
            out, err = await second.communicate()
        lines = err.decode().strip().splitlines()
        assert second.returncode == 2, (out, err)
        assert len(lines) == 1, lines
        assert f"pid {first.pid}" in lines[0] and f"127.0.0.1:{port}" in lines[0], lines[0]
        assert [(e.method, e.path) for e in sim.state.journal] == []
        assert account.refresh_token == rt
        assert _snapshot(db) == before
        lock = orjson.loads((tmp_path / "data" / "db.sqlite.lock").read_bytes())
        assert lock["pid"] == first.pid  # the refused start did not overwrite the record
    finally:
        assert await _stop(first) == 0


async def test_a_stale_lock_file_does_not_block_a_start(sim: Sim, tmp_path: Path) -> None:
    port = _free_port()
    config = _write_config(tmp_path, sim, port)
    (tmp_path / "data").mkdir()
    lock = tmp_path / "data" / "db.sqlite.lock"
    # Left by a process killed with SIGKILL: the file stays, its lock went with the process.
    lock.write_text('{"pid": 999999999, "address": "http://127.0.0.1:1"}')
    proc = await _spawn(config)
    try:
        await _wait_healthy(proc, port)
        record = orjson.loads(lock.read_bytes())
        assert record["pid"] == proc.pid and record["address"] == f"http://127.0.0.1:{port}"
    finally:
        assert await _stop(proc) == 0
