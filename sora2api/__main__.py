"""Command line: `python -m sora2api --config PATH`."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import sys
import time
from pathlib import Path

from .config import Config, ConfigError, load_config


class InstanceLockedError(Exception):
    """Another process already serves this database."""


def lock_database(config: Config) -> int | None:
    """Take the exclusive lock on `<db_path>.lock` and record who holds it; the returned file
    descriptor must stay open for the life of the process (the kernel drops the lock with it,
    so a process killed with SIGKILL leaves no stale lock)."""
    db_path = config.storage.db_path
    if db_path == ":memory:":
        return None
    path = Path(f"{config.path(db_path)}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(os.read(fd, 4096))
        os.close(fd)
        raise InstanceLockedError(
            f"another instance ({holder}) is already running on {config.path(db_path)}; "
            "stop it first, or give this one its own [storage] db_path"
        ) from None
    record = {
        "pid": os.getpid(),
        "address": f"http://{config.server.host}:{config.server.port}",
        "started_at": time.time(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd


def _holder(raw: bytes) -> str:
    try:
        record = json.loads(raw)
        return f"pid {int(record['pid'])}, {record['address']}"
    except (ValueError, KeyError, TypeError):
        return "pid unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sora2api", description="OpenAI-compatible Sora proxy")
    parser.add_argument("--config", default="config.toml", help="path to config.toml")
    parser.add_argument("--host", help="override [server] host")
    parser.add_argument("--port", type=int, help="override [server] port")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"sora2api: config error: {exc}", file=sys.stderr)
        return 2
    if args.host or args.port:
        config = config.replace(
            server={k: v for k, v in (("host", args.host), ("port", args.port)) if v}
        )
    # Before any start-up work: a second instance would refresh (and so spend) the running one's
    # refresh tokens and "resume" its jobs before failing on the busy port.
    try:
        lock_fd = lock_database(config)
    except InstanceLockedError as exc:
        print(f"sora2api: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sora2api: cannot lock the database: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite logs SQL parameters (tokens among them) at DEBUG: never let secrets reach a log.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger().level))
    # Imported here so a config error answers before aiohttp and friends load.
    from aiohttp import web

    from .app import create_app

    try:
        web.run_app(
            create_app(config),
            host=config.server.host,
            port=config.server.port,
            shutdown_timeout=config.server.shutdown_timeout,
            access_log=None,
            print=lambda msg: logging.getLogger("sora2api").info(
                "listening on http://%s:%d", config.server.host, config.server.port
            ),
        )
    except OSError as exc:
        print(f"sora2api: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        if lock_fd is not None:
            os.close(lock_fd)  # the lock file stays: deleting it would race a starting instance
    return 0


if __name__ == "__main__":
    sys.exit(main())
