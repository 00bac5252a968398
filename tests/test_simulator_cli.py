"""`python -m sora2api.simulator` prints usable tokens and stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_cli_serves_seeded_accounts_and_stops_on_signal(sig: signal.Signals) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sora2api.simulator", "--port", str(port), "--accounts", "2",
        "--time-scale", "0.05", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(15):
            while not any("Running on" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
        exports = [line.split() for line in lines if line.startswith("export AT")]
        tokens = [words[1].partition("=")[2] for words in exports]
        assert len(tokens) == 2 and [words[3][:3] for words in exports] == ["RT=", "RT2"]
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {tokens[1]}"}
            async with session.get(f"http://127.0.0.1:{port}/backend/me", headers=headers) as resp:
                assert resp.status == 200
                assert (await resp.json())["email"] == "sim2@sim.example"
        proc.send_signal(sig)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
