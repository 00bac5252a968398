"""`python -m sora2api.simulator`: run the simulator alone and print ready-to-use tokens."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from .app import create_simulator
from .keys import SIM_STATE
from .providers import PROVIDER_STATE

# What each provider's official SDK takes as its base URL, relative to the simulator's origin.
_SDK_BASE = {"openai": "/v1", "seedance": "/api/v3", "gemini": ""}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sora2api.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--time-scale", type=float, default=0.05, help="multiplies every duration")
    parser.add_argument("--accounts", type=int, default=2, help="accounts to seed")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed for reproducible ids")
    parser.add_argument(
        "--provider-keys", type=int, default=1, help="API keys to seed per live provider"
    )
    parser.add_argument(
        "--provider-key",
        action="append",
        default=[],
        metavar="PROVIDER=KEY",
        help="seed this exact key (openai, seedance or gemini); repeatable",
    )
    parser.add_argument(
        "--no-strict-sentinel", action="store_true", help="do not require openai-sentinel-token"
    )
    args = parser.parse_args(argv)
    for spec in args.provider_key:
        provider, sep, key = spec.partition("=")
        if not sep or not key or provider not in _SDK_BASE:
            parser.error(f"--provider-key wants PROVIDER=KEY with PROVIDER in {list(_SDK_BASE)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Seed accounts, print their tokens, serve until SIGINT/SIGTERM."""
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_simulator(
        time_scale=args.time_scale, strict_sentinel=not args.no_strict_sentinel, seed=args.seed
    )
    state = app[SIM_STATE]
    base = f"http://{args.host}:{args.port}"
    # These are simulator-minted tokens, worthless anywhere else: printing them is the point.
    for n in range(args.accounts):
        account = state.add_account(f"sim{n + 1}@sim.example")
        print(f"account {account.email} (username {account.username}, user_id {account.user_id})")
        print(f"  access_token:  {account.access_token}")
        print(f"  session_token: {account.session_token}")
        print(f"  refresh_token: {account.refresh_token}")
    print(
        f"backend base URL: {base}/backend  (ST->AT {base}/api/auth/session, RT->AT {base}/oauth/token)"
    )
    providers = app[PROVIDER_STATE]
    for spec in args.provider_key:
        provider, _, key = spec.partition("=")
        providers.add_account(provider, key=key)
    for provider in _SDK_BASE:
        for _ in range(args.provider_keys):
            providers.add_account(provider)
    for key in providers.accounts.values():
        print(
            f"{key.provider} key {key.name}: {key.key}  (SDK base_url {base}{_SDK_BASE[key.provider]})"
        )
    print(
        f"control API: {base}/_sim/  (accounts, faults, scenario, journal, settings, reset;"
        " providers/ for the live-provider keys, variants and faults)",
        flush=True,
    )
    # handler_cancellation: a client that gives up on a `hang` fault frees its handler at once.
    web.run_app(app, host=args.host, port=args.port, handler_cancellation=True, print=print)


if __name__ == "__main__":
    main()
