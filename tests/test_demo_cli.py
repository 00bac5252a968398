"""`make demo` and `python -m sora2api.simulator` as real processes: accounts that survive a
restart, paste-ready export lines, quiet by default, and one clear line when a port is taken."""

from __future__ import annotations

import asyncio
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api.simulator import SIM_STATE, create_simulator
from sora2api.simulator.persist import StateFile
from sora2api.simulator.providers import PROVIDER_STATE

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo.py"
START = 30  # seconds a process may take to come up on a loaded machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def taken_port() -> Iterator[int]:
    """A port something really listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False


class Proc:
    """A child process whose merged output is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def until(self, marker: str) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(START):
            while not any(marker in line for line in self.lines):
                line = (await self.proc.stdout.readline()).decode()
                assert line, "exited early:\n" + "".join(self.lines)
                self.lines.append(line)

    async def rest(self) -> None:
        """The output left once the process has exited on its own."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(START):
            self.lines += (await self.proc.stdout.read()).decode().splitlines(keepends=True)
            await self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM, then the rest of the output; the exit status."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START):
            self.lines += (await self.proc.stdout.read()).decode().splitlines(keepends=True)
            return await self.proc.wait()

    def exports(self) -> dict[str, str]:
        """Every NAME=value of the `export` lines, as a shell would read them."""
        found: dict[str, str] = {}
        for line in self.lines:
            if line.startswith("export "):
                for word in shlex.split(line)[1:]:
                    name, _, value = word.partition("=")
                    found[name] = value
        return found


@asynccontextmanager
async def run(*argv: str, cwd: Path = ROOT) -> AsyncIterator[Proc]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        yield Proc(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def provider_keys(proc: Proc) -> list[str]:
    return [line.split()[3] for line in proc.lines if " key " in line]


def simulator(port: int, *extra: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "sora2api.simulator", "--port", str(port), *extra)


async def me(session: aiohttp.ClientSession, base: str, at: str) -> int:
    async with session.get(f"{base}/backend/me", headers={"Authorization": f"Bearer {at}"}) as r:
        return r.status


async def refresh(session: aiohttp.ClientSession, base: str, rt: str) -> tuple[int, dict[str, str]]:
    body = {"grant_type": "refresh_token", "refresh_token": rt}
    async with session.post(f"{base}/oauth/token", json=body) as resp:
        return resp.status, await resp.json()


async def test_restart_keeps_accounts_and_tokens(tmp_path: Path) -> None:
    port, state = free_port(), tmp_path / "data" / "sim.json"
    base = f"http://127.0.0.1:{port}"
    args = simulator(port, "--accounts", "2", "--state", str(state))
    async with run(*args) as first, aiohttp.ClientSession() as session:
        await first.until("Running on")
        tokens = first.exports()
        assert set(tokens) >= {"AT", "ST", "RT", "AT2", "ST2", "RT2"}
        assert await me(session, base, tokens["AT2"]) == 200
        status, rotated = await refresh(session, base, tokens["RT"])
        assert status == 200 and rotated["refresh_token"] != tokens["RT"]
        assert await first.stop() == 0
    assert state.exists()
    # Quiet by default: no line per request.
    assert not any("/backend/me" in line for line in first.lines), first.lines

    async with run(*args, "--access-log") as second, aiohttp.ClientSession() as session:
        await second.until("Running on")
        again = second.exports()
        assert "restored from" in "".join(second.lines)
        # The same accounts: the printed AT and ST are run 1's, the RT is the rotated one.
        assert (again["AT"], again["ST"], again["AT2"]) == (
            tokens["AT"],
            tokens["ST"],
            tokens["AT2"],
        )
        assert again["RT"] == rotated["refresh_token"]
        # The live providers' keys too: one per provider, the same ones.
        assert provider_keys(second) == provider_keys(first) and len(provider_keys(first)) == 3
        assert await me(session, base, tokens["AT"]) == 200
        assert await me(session, base, rotated["access_token"]) == 200
        status, body = await refresh(session, base, tokens["RT"])
        assert status == 400 and "already been used" in body["error_description"]
        assert (await refresh(session, base, rotated["refresh_token"]))[0] == 200
        assert await second.stop() == 0
    assert any("GET /backend/me" in line for line in second.lines), second.lines


async def test_export_lines_paste_into_a_shell(tmp_path: Path) -> None:
    port = free_port()
    async with run(*simulator(port, "--accounts", "2")) as sim:
        await sim.until("Running on")
        exports = [line for line in sim.lines if line.startswith("export ")]
        assert await sim.stop() == 0
    script = "".join(exports) + 'printf "%s\\n" "$AT" "$RT2" "$SORA2API_UPSTREAM_BASE_URL"'
    async with run("bash", "-c", script) as shell:
        await shell.rest()
    assert shell.proc.returncode == 0
    found = sim.exports()
    assert [line.rstrip("\n") for line in shell.lines] == [
        found["AT"],
        found["RT2"],
        f"http://127.0.0.1:{port}/backend",
    ]
    assert found["AT"].count(".") == 2 and found["RT2"].startswith("rt_")


async def test_simulator_on_a_taken_port_says_so_in_one_line() -> None:
    with taken_port() as port:
        async with run(*simulator(port)) as sim:
            await sim.rest()
            assert sim.proc.returncode != 0
    assert len(sim.lines) == 1 and f"port {port}" in sim.lines[0] and "in use" in sim.lines[0]


def demo_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nhost = "127.0.0.1"\n')
    return config


@pytest.mark.parametrize("which", ["sora2api", "simulator"])
async def test_demo_stops_at_a_taken_port_before_starting_anything(
    tmp_path: Path, which: str
) -> None:
    config, state = demo_config(tmp_path), tmp_path / "sim.json"
    with taken_port() as busy:
        other = free_port()
        proxy_port, sim_port = (busy, other) if which == "sora2api" else (other, busy)
        argv = (sys.executable, str(DEMO), "--config", str(config), "--state", str(state))
        ports = ("--port", str(proxy_port), "--sim-port", str(sim_port))
        async with run(*argv, *ports, cwd=tmp_path) as demo:
            await demo.rest()
            assert demo.proc.returncode == 1
        assert port_is_free(other)  # nothing was started on the other port
    [line] = demo.lines
    assert f"port {busy}" in line and f"({which})" in line and "in use" in line
    assert not state.exists() and not (tmp_path / "data").exists()


async def test_demo_restart_keeps_the_token_the_proxy_saved(tmp_path: Path) -> None:
    config, state = demo_config(tmp_path), tmp_path / "sim.json"
    port, sim_port = free_port(), free_port()
    argv = (sys.executable, str(DEMO), "--config", str(config), "--state", str(state))
    ports = ("--port", str(port), "--sim-port", str(sim_port))
    base, key = f"http://127.0.0.1:{port}", {"Authorization": "Bearer han1234"}
    async with run(*argv, *ports, cwd=tmp_path) as demo:
        await demo.until("listening on")
        at = demo.exports()["AT"]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/tokens", json={"token": at}, headers=key) as r:
                assert r.status in (200, 201), await r.text()
        assert await demo.stop() == 0
    assert (tmp_path / "data" / "demo.db").exists() and port_is_free(sim_port)

    async with run(*argv, *ports, cwd=tmp_path) as demo:
        await demo.until("listening on")
        assert demo.exports()["AT"] == at
        body = {"model": "sora-image", "messages": [{"role": "user", "content": "a cat"}]}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1/chat/completions", json=body, headers=key) as r:
                assert r.status == 200, await r.text()
                assert "/tmp/" in (await r.json())["choices"][0]["message"]["content"]
        assert await demo.stop() == 0


async def test_a_printed_access_token_always_works(tmp_path: Path) -> None:
    """A restart after the saved AT expired prints (and persists) a fresh one."""
    port, state = free_port(), tmp_path / "sim.json"
    base = f"http://127.0.0.1:{port}"
    args = simulator(port, "--accounts", "1", "--state", str(state), "--at-ttl", "30")
    seen = []
    for _ in range(2):
        async with run(*args) as sim, aiohttp.ClientSession() as session:
            await sim.until("Running on")
            seen.append(sim.exports()["AT"])
            assert await me(session, base, seen[-1]) == 200
            assert await sim.stop() == 0
    # 30 s is under the minute a printed token must still have, so each start mints one.
    assert seen[0] != seen[1] and seen[1] in state.read_text()


async def test_state_file_is_written_when_tokens_change_only(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    app = create_simulator(time_scale=0.01)
    sim_state = app[SIM_STATE]
    account = sim_state.add_account("a@sim.example")
    gateway = app[PROVIDER_STATE].add_account("openai", variant={"wrap": True})
    state_file = StateFile(tmp_path / "sim.json", sim_state, app[PROVIDER_STATE])
    state_file.save()
    state_file.attach(app)
    client = await aiohttp_client(app)
    written = state_file.path.read_bytes()
    resp = await client.get(
        "/backend/me", headers={"Authorization": f"Bearer {account.access_token}"}
    )
    assert resp.status == 200 and state_file.path.read_bytes() == written
    old_rt = account.refresh_token  # the live account object takes the rotated one
    body = {"grant_type": "refresh_token", "refresh_token": old_rt}
    resp = await client.post("/oauth/token", json=body)
    assert resp.status == 200
    new_rt = (await resp.json())["refresh_token"]
    saved = orjson.loads(state_file.path.read_bytes())
    assert saved["refresh_tokens"] == {new_rt: "a@sim.example"}
    assert saved["used_refresh_tokens"] == {old_rt: "a@sim.example"}
    # A fresh simulator restored from the file accepts the same tokens.
    other = create_simulator(time_scale=0.01)
    StateFile(state_file.path, other[SIM_STATE], other[PROVIDER_STATE]).load()
    again = await aiohttp_client(other)
    resp = await again.get("/v1/videos", headers={"Authorization": f"Bearer {gateway.key}"})
    assert resp.status == 200 and (await resp.json())["code"] == "success"  # its variant too
    resp = await again.get(
        "/backend/me", headers={"Authorization": f"Bearer {account.access_token}"}
    )
    assert resp.status == 200 and (await resp.json())["email"] == "a@sim.example"
    assert (await again.post("/oauth/token", json=body)).status == 400
