"""API key and admin session checks, hashed admin password, login rate limiting."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .api_keys import KeyRing
from .errors import AuthenticationError, BadRequestError, RateLimitError
from .settings import Settings
from .store import ApiKeyRow, Store

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "admin"
_PW_KEY = "admin.password"
_API_KEY = "auth.api_key"


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt's work factors; stored with each hash so a stronger default can upgrade old ones."""

    n: int
    r: int
    p: int


# OWASP's password storage cheat sheet (2025): N=2^17, r=8, p=1. About 0.4 s and 128 MiB a hash.
OWASP_COST = ScryptCost(n=2**17, r=8, p=1)
# Hashes stored before the cost was recorded with them.
LEGACY_COST = ScryptCost(n=2**14, r=8, p=1)
# The cost of new hashes. Nothing in the service changes it; the test suite lowers it (it hashes
# hundreds of times) and tests/test_password_hashing.py proves this default.
hash_cost = OWASP_COST
# Hashes run at once: each holds 128 MiB and a core for 0.4 s, so a burst of logins queues here
# instead of taking every core (and the memory) from the streams.
_HASH_SLOTS = 1


def _hash_password(password: str, salt: bytes, cost: ScryptCost) -> str:
    # maxmem: OpenSSL's default (32 MiB) is below the 128 * n * r bytes N=2^17 needs.
    maxmem = 2 * 128 * cost.n * cost.r * cost.p
    return hashlib.scrypt(
        password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=maxmem, dklen=32
    ).hex()


def _record_cost(record: dict[str, Any]) -> ScryptCost:
    if "n" not in record:
        return LEGACY_COST
    return ScryptCost(int(record["n"]), int(record["r"]), int(record["p"]))


def client_address(request: web.Request, trusted: str) -> str:
    """The client's address: the peer, or behind a trusted reverse proxy (one of the comma-separated
    `trusted`, [server] trusted_proxies) the address it forwards."""
    peer = request.remote or ""
    if trusted and peer in {t.strip() for t in trusted.split(",")}:
        forwarded = request.headers.get("X-Forwarded-For", "")
        # The last hop is the one the trusted proxy added (clients can forge earlier ones).
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return peer


def bearer(request: web.Request) -> str:
    """The credential from `Authorization: Bearer X` (or a bare value), else empty."""
    header = request.headers.get("Authorization", "").strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return header


@dataclass(slots=True)
class AdminSession:
    username: str
    expires_at: float


class Auth:
    """Holds the effective API key and admin credentials; checks requests."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self.api_key = settings.current.auth.api_key
        self.admin_username = settings.current.auth.admin_username
        self.password_is_default = False
        self._pw: dict[str, Any] = {}
        self._failures: dict[str, deque[float]] = {}
        self._hash_slots = asyncio.Semaphore(_HASH_SLOTS)
        # The keys the admin created (api_keys.py); self.api_key stays the bootstrap key.
        self.keys = KeyRing(store)

    async def _hash(self, password: str, salt: bytes, cost: ScryptCost) -> str:
        """scrypt off the event loop (it would stall every stream for its 0.4 s)."""
        async with self._hash_slots:
            return await asyncio.to_thread(_hash_password, password, salt, cost)

    async def _verify(self, password: str, record: dict[str, Any]) -> bool:
        digest = await self._hash(password, bytes.fromhex(record["salt"]), _record_cost(record))
        return hmac.compare_digest(digest, record["hash"])

    async def _hashed(self, password: str) -> dict[str, Any]:
        """The stored fields of a new hash of `password` at today's cost."""
        salt = secrets.token_bytes(16)
        cost = hash_cost
        digest = await self._hash(password, salt, cost)
        return {"salt": salt.hex(), "hash": digest, "n": cost.n, "r": cost.r, "p": cost.p}

    async def load(self) -> None:
        cfg = self._settings.current.auth
        await self.keys.load()
        stored_key = await self._settings.get_value(_API_KEY)
        if stored_key and ("auth", "api_key") not in self._settings.current.env_overrides:
            self.api_key = stored_key
        pw = await self._settings.get_value(_PW_KEY)
        # Re-seed from config.toml only while the panel never changed the password and the file
        # did. The file's password is checked against the stored hash: a fast fingerprint of it
        # would let anyone with the database skip scrypt.
        if not pw or (
            not pw.get("changed")
            and (pw.get("username") != cfg.admin_username
                 or not await self._verify(cfg.admin_password, pw))
        ):  # fmt: skip
            pw = {
                "username": cfg.admin_username,
                **await self._hashed(cfg.admin_password),
                "changed": False,
                "default": cfg.admin_password == DEFAULT_PASSWORD,
            }
            await self._settings.set_value(_PW_KEY, pw)
        elif "file" in pw:
            # Older releases kept an unsalted sha256 of the file's password: a shortcut past scrypt.
            pw = {k: v for k, v in pw.items() if k != "file"}
            await self._settings.set_value(_PW_KEY, pw)
        self._pw = pw
        self.admin_username = pw["username"]
        self.password_is_default = bool(pw.get("default"))
        if self.password_is_default:
            log.warning(
                "the admin password is still the default; log in to the panel and change it "
                "before exposing this server"
            )
        if self.api_key == "han1234":
            log.warning("the API key is the well-known default 'han1234'; change it in the panel")

    def check_api_key(self, request: web.Request) -> ApiKeyRow | None:
        """The created key the request carries, None for the bootstrap key; else a 401."""
        given = bearer(request)
        if not given:
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <api_key>'", code="missing_api_key"
            )
        if hmac.compare_digest(given.encode(), self.api_key.encode()):
            return None
        # A dict lookup by hash: its timing tells nothing about a key's bytes (it depends on
        # the hash, which an attacker cannot steer towards a stored one).
        key = self.keys.lookup(given)
        if key is None:
            raise AuthenticationError("Invalid API key")
        if not key.enabled:
            raise AuthenticationError(
                f"API key {key.key_hint} ({key.name}) is disabled", code="api_key_disabled"
            )
        if key.expires_at is not None and key.expires_at <= time.time():
            raise AuthenticationError(
                f"API key {key.key_hint} ({key.name}) expired", code="api_key_expired"
            )
        return key

    def api_key_matches(self, request: web.Request) -> bool:
        given = bearer(request)
        return bool(given) and hmac.compare_digest(given.encode(), self.api_key.encode())

    async def set_api_key(self, new_key: str) -> None:
        if ("auth", "api_key") in self._settings.current.env_overrides:
            raise BadRequestError(
                "The API key is set by SORA2API_AUTH_API_KEY and cannot be changed here"
            )
        if len(new_key) < 8 or any(c.isspace() for c in new_key):
            raise BadRequestError(
                "The API key must be at least 8 characters without spaces", param="api_key"
            )
        await self._settings.set_value(_API_KEY, new_key)
        self.api_key = new_key

    # -- admin sessions -------------------------------------------------------------------

    def _rate_limit(self, client: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 10_000:
            # Forget addresses whose failures are all older than the window (bounded memory).
            for addr in [a for a, w in self._failures.items() if not w or now - w[-1] > 60]:
                del self._failures[addr]
        window = self._failures.setdefault(client, deque())
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self._settings.current.auth.login_attempts_per_minute:
            raise RateLimitError(
                "Too many failed logins from this address; wait a minute and retry"
            )

    async def login(self, username: str, password: str, client: str) -> tuple[str, float]:
        """Check credentials and open a session; returns (session token, expiry)."""
        self._rate_limit(client)
        # The attempt counts as a failure until it proves right: concurrent guesses waiting for
        # the hash would otherwise all pass the limit before the first one fails.
        stamp = time.monotonic()
        self._failures[client].append(stamp)
        record = self._pw
        ok_user = hmac.compare_digest(username.encode(), record["username"].encode())
        ok_pw = await self._verify(password, record)
        if not (ok_user and ok_pw):
            window = self._failures.setdefault(client, deque())
            if stamp not in window:  # a concurrent success cleared the window meanwhile
                window.append(stamp)
            raise AuthenticationError("Wrong username or password", code="invalid_credentials")
        self._failures.pop(client, None)
        if _record_cost(self._pw) != hash_cost and self._pw is record:
            # Upgrade a hash made at an older cost now that the password is known to be right.
            upgraded = {**record, **await self._hashed(password)}
            if self._pw is record:  # not changed meanwhile (password change, another upgrade)
                await self._settings.set_value(_PW_KEY, upgraded)
                self._pw = upgraded
                log.info(
                    "admin password hash upgraded to scrypt N=2^%d", hash_cost.n.bit_length() - 1
                )
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self._settings.current.auth.session_ttl_hours * 3600
        sessions = self._store.sessions
        await sessions.add(
            hashlib.sha256(token.encode()).hexdigest(), username, now, expires, client
        )
        await sessions.delete_expired(now)
        return token, expires

    async def session(self, request: web.Request) -> AdminSession | None:
        token = bearer(request) or request.cookies.get("sora2api_session", "")
        if not token:
            return None
        row = await self._store.sessions.get(hashlib.sha256(token.encode()).hexdigest())
        if row is None or row.expires_at < time.time():
            return None
        return AdminSession(row.username, row.expires_at)

    async def logout(self, request: web.Request) -> None:
        token = bearer(request) or request.cookies.get("sora2api_session", "")
        await self._store.sessions.delete(hashlib.sha256(token.encode()).hexdigest())

    async def change_password(self, old: str, new: str, username: str | None = None) -> None:
        """Change the admin password (and optionally username); every session is revoked."""
        if not await self._verify(old, self._pw):
            raise BadRequestError("The current password is wrong", param="old_password")
        if len(new) < 8:
            raise BadRequestError(
                "The new password must be at least 8 characters", param="new_password"
            )
        if new == DEFAULT_PASSWORD or new == old:
            raise BadRequestError(
                "Choose a new password different from the old one", param="new_password"
            )
        pw: dict[str, Any] = {**self._pw, **await self._hashed(new)}
        pw.update(
            changed=True,
            default=False,
            username=(username or pw["username"]).strip() or pw["username"],
        )
        await self._settings.set_value(_PW_KEY, pw)
        self._pw = pw
        self.admin_username = pw["username"]
        self.password_is_default = False
        await self._store.sessions.delete_all()
