"""`python -m sora2api.simulator`: run the simulator alone and print ready-to-use tokens."""

from __future__ import annotations

import argparse
import errno
import logging
import shlex
import socket
import sys
from pathlib import Path

from aiohttp import web

from .app import create_simulator
from .keys import SIM_STATE
from .persist import StateFile, StateFileError
from .providers import PROVIDER_STATE, ProviderAccount, ProviderState
from .records import Account
from .state import SimState

# Long enough that the tokens a proxy saved still work after a weekend; the real ATs lived days.
DEFAULT_AT_TTL = 10 * 86400.0
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
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="JSON file keeping the accounts and their tokens across restarts",
    )
    parser.add_argument(
        "--at-ttl", type=float, default=DEFAULT_AT_TTL, help="seconds a seeded access token lives"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    for spec in args.provider_key:
        provider, sep, key = spec.partition("=")
        if not sep or not key or provider not in _SDK_BASE:
            parser.error(f"--provider-key wants PROVIDER=KEY with PROVIDER in {list(_SDK_BASE)}")
    return args


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, or SystemExit with one line saying why there is none."""
    try:
        return socket.create_server((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = "is already in use; stop what listens there or choose another --port"
        else:
            reason = f"cannot be opened: {exc.strerror or exc}"
        print(f"simulator: port {port} on {host} {reason}", file=sys.stderr)
        raise SystemExit(1) from None


def export_lines(accounts: list[Account]) -> list[str]:
    """`export AT=… ST=… RT=…` per account (AT2, ST2, RT2 for the second), ready to paste."""
    lines = []
    for n, account in enumerate(accounts, start=1):
        suffix = "" if n == 1 else str(n)
        values = (
            ("AT", account.access_token),
            ("ST", account.session_token),
            ("RT", account.refresh_token),
        )
        pairs = " ".join(f"{name}{suffix}={shlex.quote(value)}" for name, value in values)
        lines.append(f"export {pairs}")
    return lines


def upstream_exports(base: str) -> str:
    """The environment that points `make run` (or `python -m sora2api`) at this simulator."""
    pairs = {
        "SORA2API_UPSTREAM_BASE_URL": f"{base}/backend",
        "SORA2API_UPSTREAM_SESSION_URL": f"{base}/api/auth/session",
        "SORA2API_UPSTREAM_OAUTH_URL": f"{base}/oauth/token",
        "SORA2API_UPSTREAM_THIRD_PARTY_URL": f"{base}/thirdparty/MP4/{{post_id}}.mp4",
    }
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in pairs.items())


def seed_accounts(state: SimState, count: int, at_ttl: float) -> list[Account]:
    """sim1@ … simN@: the ones a state file brought back, the missing ones created."""
    accounts = []
    for n in range(1, count + 1):
        email = f"sim{n}@sim.example"
        account = state.accounts.get(email)
        if account is None:
            account = state.add_account(email, at_ttl=at_ttl)
        record = state.tokens.get(account.access_token)
        if record is None or record.revoked or record.exp <= state.wall() + 60:
            # The printed AT must work: a restart after it expired mints the next one.
            account.access_token = state.mint_access_token(account)
        accounts.append(account)
    return accounts


def seed_keys(providers: ProviderState, count: int, fixed: list[str]) -> list[ProviderAccount]:
    """The fixed PROVIDER=KEY keys, then random ones until each provider has `count` of them
    (keys a state file brought back count)."""
    wanted = [spec.partition("=")[::2] for spec in fixed]
    for provider, key in wanted:
        if key not in providers.accounts:
            providers.add_account(provider, key=key)
    fixed_keys = {key for _, key in wanted}
    for provider in _SDK_BASE:
        have = [a for a in providers.accounts.values() if a.provider == provider]
        for _ in range(count - sum(1 for a in have if a.key not in fixed_keys)):
            providers.add_account(provider)
    return list(providers.accounts.values())


def main(argv: list[str] | None = None) -> None:
    """Seed (or restore) accounts, print their tokens, serve until SIGINT/SIGTERM."""
    args = _parse(argv)
    # Line by line even into a pipe: a launcher waits for these lines before it goes on.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sock = listen(args.host, args.port)
    app = create_simulator(
        time_scale=args.time_scale, strict_sentinel=not args.no_strict_sentinel, seed=args.seed
    )
    state = app[SIM_STATE]
    providers = app[PROVIDER_STATE]
    state_file = StateFile(args.state, state, providers) if args.state else None
    try:
        restored = state_file.load() if state_file else False
        accounts = seed_accounts(state, args.accounts, args.at_ttl)
        keys = seed_keys(providers, args.provider_keys, args.provider_key)
        if state_file:
            state_file.save()
            state_file.attach(app)
    except (StateFileError, OSError) as exc:
        print(f"simulator: state file {exc}; move it away to start afresh", file=sys.stderr)
        raise SystemExit(2) from None
    base = f"http://{args.host}:{args.port}"
    kept = ""
    if args.state:
        kept = (
            f"; {'restored from' if restored else 'saved in'} {args.state}, valid across restarts"
        )
    print(f"simulator: {len(accounts)} account(s){kept}")
    for account in accounts:
        print(f"  {account.email}  username {account.username}  user_id {account.user_id}")
    for key in keys:
        print(
            f"{key.provider} key {key.name}: {key.key}  (SDK base_url {base}{_SDK_BASE[key.provider]})"
        )
    print(f"backend: {base}/backend  control API: {base}/_sim/ (faults, scenario, journal, reset;")
    print("  providers/ for the live-provider keys, variants and faults)")
    print("# to point `make run` at this simulator, run this first in the shell that starts it:")
    print(upstream_exports(base))
    if accounts:
        # Simulator-minted tokens, worthless anywhere else: printing them is the point.
        print("# the accounts' access, session and refresh tokens, ready to paste:")
        print("\n".join(export_lines(accounts)))
    # handler_cancellation: a client that gives up on a `hang` fault frees its handler at once.
    web.run_app(
        app,
        sock=sock,
        handler_cancellation=True,
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None,
        # One line, once it listens: `make demo` waits for it before starting sora2api.
        print=lambda _: print(f"simulator: Running on {base} (Ctrl-C stops it)"),
    )


if __name__ == "__main__":
    main()
