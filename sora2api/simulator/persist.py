"""The simulator's accounts in a JSON file, so a restarted demo accepts the tokens a proxy saved.

Only what a token needs survives: accounts, their ATs, STs and RTs (rotations included), the
signing secret and the live providers' API keys. Tasks, drafts, faults and the journal start
empty on every run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from .providers import ProviderAccount, ProviderState, Variant
from .records import AccessToken, Account, MediaSpec
from .state import SimState

log = logging.getLogger(__name__)

VERSION = 1
_TOKENS_PER_ACCOUNT = 50  # newest ATs kept per account; older ones are long expired in practice
_USED_RTS = 200  # rotated-out RTs kept, so a replayed one still answers "already been used"
_SKIPPED = frozenset({"polls", "quota_resets_at"})  # per-run counters; a monotonic clock time


class StateFileError(Exception):
    """The state file exists but cannot be used; the message names the file and the problem."""


def snapshot(state: SimState, providers: ProviderState | None = None) -> bytes:
    """The persistent part of the state as JSON bytes (stable while nothing changes)."""
    wall_minus_now = state.wall() - state.now()
    accounts = []
    for account in state.accounts.values():
        row = {k: v for k, v in dataclasses.asdict(account).items() if k not in _SKIPPED}
        # Stored as wall time: the monotonic clock the simulator counts quota on restarts at boot.
        row["quota_resets_wall"] = round(account.quota_resets_at + wall_minus_now)
        accounts.append(row)
    per_account: dict[str, list[AccessToken]] = {}
    for record in state.tokens.values():
        if record.email in state.accounts:
            per_account.setdefault(record.email, []).append(record)
    tokens = [
        dataclasses.asdict(record)
        for records in per_account.values()
        for record in sorted(records, key=lambda r: r.iat)[-_TOKENS_PER_ACCOUNT:]
    ]
    known = state.accounts.keys()
    used = [(rt, email) for rt, email in state.used_refresh_tokens.items() if email in known]
    body = {
        "version": VERSION,
        "secret": state.secret.hex(),
        "accounts": accounts,
        "tokens": tokens,
        "sessions": {st: email for st, email in state.sessions.items() if email in known},
        "refresh_tokens": {
            rt: email for rt, email in state.refresh_tokens.items() if email in known
        },
        "used_refresh_tokens": dict(used[-_USED_RTS:]),
        "provider_keys": [
            dataclasses.asdict(key) for key in (providers.accounts.values() if providers else ())
        ],
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


def restore(
    state: SimState,
    data: bytes,
    source: str = "state file",
    providers: ProviderState | None = None,
) -> None:
    """Put the accounts and tokens of a snapshot into a fresh state."""
    try:
        body = orjson.loads(data)
        if not isinstance(body, dict) or body.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} simulator state")
        secret = bytes.fromhex(body["secret"])
        now_minus_wall = state.now() - state.wall()
        accounts = [_account(row, now_minus_wall) for row in body["accounts"]]
        tokens = [AccessToken(**row) for row in body["tokens"]]
        maps = [
            {str(k): str(v) for k, v in body[name].items()}
            for name in ("sessions", "refresh_tokens", "used_refresh_tokens")
        ]
        keys = [_provider_key(row) for row in body.get("provider_keys", [])]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StateFileError(f"{source}: {exc}") from None
    state.secret = secret
    for account in accounts:
        state.accounts[account.email] = account
        state.media[account.user_id] = MediaSpec(kind="png")
    state.tokens.update((t.token, t) for t in tokens)
    state.sessions.update(maps[0])
    state.refresh_tokens.update(maps[1])
    state.used_refresh_tokens.update(maps[2])
    if providers is not None:
        providers.accounts.update((key.key, key) for key in keys)


def _account(row: dict[str, Any], now_minus_wall: float) -> Account:
    names = {f.name for f in dataclasses.fields(Account)} - _SKIPPED
    # A file from an older simulator may lack newer fields: their defaults apply.
    fields = {k: v for k, v in row.items() if k in names}
    return Account(quota_resets_at=float(row["quota_resets_wall"]) + now_minus_wall, **fields)


def _provider_key(row: dict[str, Any]) -> ProviderAccount:
    variant = row.pop("variant", None)
    key = ProviderAccount(**row)
    key.variant = Variant(**variant) if variant is not None else None
    return key


class StateFile:
    """Loads the state at start, then writes it after any response that changed it, and at exit."""

    def __init__(self, path: Path, state: SimState, providers: ProviderState | None = None) -> None:
        self.path = path
        self._state = state
        self._providers = providers
        self._written = b""

    def load(self) -> bool:
        """Restore the file if there is one; False when it does not exist yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateFileError(f"{self.path}: {exc.strerror}") from None
        restore(self._state, data, str(self.path), self._providers)
        self._written = data
        return True

    def save(self) -> None:
        """Write the file when the snapshot differs from the last one written (atomically)."""
        data = snapshot(self._state, self._providers)
        if data == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)  # a crash mid-write leaves the previous file whole
        self._written = data

    def attach(self, app: web.Application) -> None:
        """Save after every response (the handler has changed the state by then) and at cleanup."""

        async def after_response(request: web.Request, response: web.StreamResponse) -> None:
            self._save_logged()

        async def at_cleanup(app: web.Application) -> None:
            self._save_logged()

        app.on_response_prepare.append(after_response)
        app.on_cleanup.append(at_cleanup)

    def _save_logged(self) -> None:
        try:
            self.save()
        except OSError as exc:
            # The simulator goes on serving; only the next restart would miss the change.
            log.warning("cannot write %s: %s", self.path, exc.strerror)
