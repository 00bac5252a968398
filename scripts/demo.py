"""`make demo`: start the simulator, wait until it listens, then sora2api pointed at it, then
add a simulated account of each live provider next to the Sora ones.

A taken port stops it before anything starts, with one line saying which port and how to pick
another. Ctrl-C (or SIGTERM) stops both processes.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import FrameType
from typing import IO, Any

import orjson

from sora2api.config import ConfigError, load_config
from sora2api.registry import PROVIDERS
from sora2api.simulator.__main__ import SDK_BASE

READY = "Running on"  # what aiohttp prints once the simulator listens
START_SECONDS = 60.0
STOP_SECONDS = 15.0
CALL_SECONDS = 30.0  # one call to sora2api or the simulator (adding an account onboards it)
# The gateway model the printed commands use: not a Sora name, so it is plainly the gateway's.
GATEWAY_MODEL = "veo-3.1-fast"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__)
    parser.add_argument("--config", default="config.toml")
    parser.add_argument("--port", type=int, default=None, help="sora2api's port (default: config)")
    parser.add_argument("--sim-port", type=int, default=8100)
    parser.add_argument("--state", default="data/demo-sim.json", help="the simulator's accounts")
    parser.add_argument("--time-scale", default="0.05")
    parser.add_argument("--access-log", action="store_true", help="the simulator logs requests")
    return parser.parse_args(argv)


def demo_env(sim_url: str, port: int | None) -> dict[str, str]:
    """sora2api's environment: every upstream host is the simulator; demo data stays apart."""
    env = dict(os.environ)
    env.update(
        SORA2API_UPSTREAM_BASE_URL=f"{sim_url}/backend",
        SORA2API_UPSTREAM_SESSION_URL=f"{sim_url}/api/auth/session",
        SORA2API_UPSTREAM_OAUTH_URL=f"{sim_url}/oauth/token",
        SORA2API_UPSTREAM_THIRD_PARTY_URL=f"{sim_url}/thirdparty/MP4/{{post_id}}.mp4",
        SORA2API_STORAGE_DB_PATH="data/demo.db",
        SORA2API_STORAGE_MEDIA_DIR="data/demo-media",
    )
    if port is not None:
        env["SORA2API_SERVER_PORT"] = str(port)
    return env


def port_problem(what: str, host: str, port: int, variable: str) -> str | None:
    """One line when `port` cannot be listened on, else None (the probe socket closes at once)."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"demo: port {port} on {host} ({what}) is already in use: stop what listens "
                f"there, or choose another port, e.g. `make demo {variable}={port + 100}`"
            )
        return f"demo: cannot listen on {host}:{port} ({what}): {exc.strerror or exc}"


def _call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One JSON call: (status, parsed body); status 0 when nothing answered."""
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=CALL_SECONDS) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, ValueError):
        return 0, None
    try:
        return status, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return status, raw.decode(errors="replace")


def wait_until_up(url: str, key: str, proxy: subprocess.Popen[str]) -> bool:
    """Whether sora2api answers GET /v1/models within START_SECONDS (False if it exited)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            return False
        status, _ = _call("GET", f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        if status:
            return True
        time.sleep(0.2)
    return False


def provider_accounts(sim_url: str) -> list[dict[str, str]]:
    """What POST /api/tokens takes for one simulated key of each live provider this build has;
    a provider whose package is not in sora2api.registry.PROVIDERS is skipped with a note."""
    status, keys = _call("GET", f"{sim_url}/_sim/providers/accounts")
    if status != 200 or not isinstance(keys, list):
        print(f"demo: could not read the simulator's provider keys (HTTP {status})")
        return []
    bodies = []
    for provider, path in SDK_BASE.items():
        if provider not in PROVIDERS:
            print(f"demo: no {provider} provider in this build; its simulated key is not added")
            continue
        key = next((k for k in keys if k["provider"] == provider and not k["suspended"]), None)
        if key is not None:
            bodies.append({"provider": provider, "token": key["key"], "base_url": sim_url + path})
    return bodies


def add_provider_accounts(url: str, key: str, sim_url: str) -> list[str]:
    """Add (or, after a restart, update) the simulated provider accounts; the providers added."""
    added = []
    for body in provider_accounts(sim_url):
        status, answer = _call(
            "POST", f"{url}/api/tokens", body, headers={"Authorization": f"Bearer {key}"}
        )
        provider = body["provider"]
        if status in (200, 201):
            added.append(provider)
            done = "added" if status == 201 else "updated"
            print(f"demo: {done} the simulated {provider} account ({body['base_url']})")
        else:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            print(
                f"demo: adding the {provider} account failed (HTTP {status}): "
                f"{error.get('message', answer)}"
            )
    return added


def gateway_commands(url: str, key: str) -> list[str]:
    """Ready-to-paste commands for a video from the simulated gateway."""
    auth = f"-H 'Authorization: Bearer {key}'"
    body = orjson.dumps(
        {"model": GATEWAY_MODEL, "prompt": "a paper boat on a river", "seconds": "4"}
    ).decode()
    chat = orjson.dumps(
        {
            "model": GATEWAY_MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": "a paper boat on a river"}],
        }
    ).decode()
    return [
        f"# a video from the simulated OpenAI-Videos gateway ({GATEWAY_MODEL}):",
        f"curl -s {url}/v1/videos {auth} -H 'Content-Type: application/json' -d '{body}'",
        f"curl -s {url}/v1/videos/VIDEO_ID {auth}    # the id from the answer above",
        f"curl -s -o boat.mp4 {url}/v1/videos/VIDEO_ID/content {auth}",
        f"curl -N {url}/v1/chat/completions {auth} -H 'Content-Type: application/json' -d '{chat}'",
    ]


def _forward(stream: IO[str], ready: threading.Event) -> None:
    """Copy the simulator's output to ours; note when it says it listens."""
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        if READY in line:
            ready.set()


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sim_url = f"http://127.0.0.1:{args.sim_port}"
    env = demo_env(sim_url, args.port)
    try:
        config = load_config(args.config, env)
    except ConfigError as exc:
        print(f"demo: config error: {exc}", file=sys.stderr)
        return 2
    server = config.server
    if server.port == args.sim_port:
        print(f"demo: sora2api and the simulator cannot share port {server.port}", file=sys.stderr)
        return 2
    for problem in (
        port_problem("sora2api", server.host, server.port, "PORT"),
        port_problem("simulator", "127.0.0.1", args.sim_port, "SIM_PORT"),
    ):
        if problem:
            print(problem, file=sys.stderr)
            return 1
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupted)  # also when started in the background (SIGINT ignored)
    sim_argv = [
        *(sys.executable, "-m", "sora2api.simulator", "--port", str(args.sim_port)),
        *("--time-scale", args.time_scale, "--accounts", "2", "--state", args.state),
        *(["--access-log"] if args.access_log else []),
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        sim = subprocess.Popen(sim_argv, stdout=subprocess.PIPE, text=True)
        procs.append(sim)
        ready = threading.Event()
        threading.Thread(target=_forward, args=(sim.stdout, ready), daemon=True).start()
        waited = 0.0
        while not ready.wait(0.1):
            waited += 0.1
            if sim.poll() is not None:
                return sim.returncode or 1  # it said why on stderr, in one line
            if waited > START_SECONDS:
                print(
                    f"demo: the simulator did not start within {START_SECONDS:.0f} s",
                    file=sys.stderr,
                )
                return 1
        proxy = subprocess.Popen(
            [sys.executable, "-m", "sora2api", "--config", args.config], env=env, text=True
        )
        procs.append(proxy)
        url = f"http://{server.host}:{server.port}"
        key = config.auth.api_key
        if wait_until_up(url, key, proxy):
            if "openai" in add_provider_accounts(url, key, sim_url):
                print("\n".join(gateway_commands(url, key)))
        else:
            print("demo: sora2api did not answer; no provider accounts were added")
        print(
            f"demo: sora2api on {url} (panel: {url}/, admin/admin); Ctrl-C stops both", flush=True
        )
        while True:
            try:
                return proxy.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
            if sim.poll() is not None:
                print(f"demo: the simulator stopped (exit {sim.returncode}); stopping sora2api")
                return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(procs)


if __name__ == "__main__":
    sys.exit(main())
