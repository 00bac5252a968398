"""Command line: `python -m sora2api --config PATH`."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, load_config


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
