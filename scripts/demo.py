"""`make demo`: start the simulator, wait until it listens, then sora2api pointed at it.

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
from types import FrameType
from typing import IO

from sora2api.config import ConfigError, load_config

READY = "Running on"  # what aiohttp prints once the simulator listens
START_SECONDS = 60.0
STOP_SECONDS = 15.0


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
        server = load_config(args.config, env).server
    except ConfigError as exc:
        print(f"demo: config error: {exc}", file=sys.stderr)
        return 2
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
