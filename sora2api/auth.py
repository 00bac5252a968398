"""API key and admin session checks, hashed admin password, login rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import keys
from .errors import AuthenticationError, BadRequestError, RateLimitError
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "admin"
_PW_KEY = "admin.password"
_API_KEY = "auth.api_key"


def mask(secret: str | None) -> str:
    """The one way a secret is ever shown or logged: all but the last 4 characters hidden."""
    if not secret:
        return ""
    return "…" + secret[-4:] if len(secret) > 8 else "…"


def mask_email(email: str | None) -> str:
    """An account email safe for listings and logs: the first two letters and the domain."""
    if not email:
        return ""
    local, at, domain = email.partition("@")
    return f"{local[: 2 if len(local) > 4 else 1]}***{at}{domain}"


def _hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or behind a trusted reverse proxy the address it forwards."""
    peer = request.remote or ""
    trusted = request.app[keys.CONFIG].server.trusted_proxies
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

    async def load(self) -> None:
        cfg = self._settings.current.auth
        stored_key = await self._settings.get_value(_API_KEY)
        if stored_key and ("auth", "api_key") not in self._settings.current.env_overrides:
            self.api_key = stored_key
        pw = await self._settings.get_value(_PW_KEY)
        file_fingerprint = hashlib.sha256(
            f"{cfg.admin_username}\0{cfg.admin_password}".encode()
        ).hexdigest()
        # Re-seed from config.toml only while the panel never changed the password and the file did.
        if not pw or (not pw.get("changed") and pw.get("file") != file_fingerprint):
            salt = secrets.token_bytes(16)
            pw = {
                "username": cfg.admin_username,
                "salt": salt.hex(),
                "hash": _hash_password(cfg.admin_password, salt),
                "changed": False,
                "file": file_fingerprint,
                "default": cfg.admin_password == DEFAULT_PASSWORD,
            }
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

    def check_api_key(self, request: web.Request) -> None:
        given = bearer(request)
        if not given:
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <api_key>'", code="missing_api_key"
            )
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise AuthenticationError("Invalid API key")

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
        ok_user = hmac.compare_digest(username.encode(), self._pw["username"].encode())
        digest = _hash_password(password, bytes.fromhex(self._pw["salt"]))
        ok_pw = hmac.compare_digest(digest, self._pw["hash"])
        if not (ok_user and ok_pw):
            self._failures[client].append(time.monotonic())
            raise AuthenticationError("Wrong username or password", code="invalid_credentials")
        self._failures.pop(client, None)
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self._settings.current.auth.session_ttl_hours * 3600
        await self._store.insert(
            "admin_sessions",
            {
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "username": username,
                "created_at": now,
                "expires_at": expires,
                "client": client,
            },
        )
        await self._store.execute("DELETE FROM admin_sessions WHERE expires_at < ?", (now,))
        return token, expires

    async def session(self, request: web.Request) -> AdminSession | None:
        token = bearer(request) or request.cookies.get("sora2api_session", "")
        if not token:
            return None
        row = await self._store.fetchone(
            "SELECT username, expires_at FROM admin_sessions WHERE token_hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
        if row is None or row["expires_at"] < time.time():
            return None
        return AdminSession(row["username"], row["expires_at"])

    async def logout(self, request: web.Request) -> None:
        token = bearer(request) or request.cookies.get("sora2api_session", "")
        await self._store.execute(
            "DELETE FROM admin_sessions WHERE token_hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )

    async def change_password(self, old: str, new: str, username: str | None = None) -> None:
        """Change the admin password (and optionally username); every session is revoked."""
        if not hmac.compare_digest(
            _hash_password(old, bytes.fromhex(self._pw["salt"])), self._pw["hash"]
        ):
            raise BadRequestError("The current password is wrong", param="old_password")
        if len(new) < 8:
            raise BadRequestError(
                "The new password must be at least 8 characters", param="new_password"
            )
        if new == DEFAULT_PASSWORD or new == old:
            raise BadRequestError(
                "Choose a new password different from the old one", param="new_password"
            )
        salt = secrets.token_bytes(16)
        pw: dict[str, Any] = dict(self._pw)
        pw.update(
            salt=salt.hex(),
            hash=_hash_password(new, salt),
            changed=True,
            default=False,
            username=(username or pw["username"]).strip() or pw["username"],
        )
        await self._settings.set_value(_PW_KEY, pw)
        self._pw = pw
        self.admin_username = pw["username"]
        self.password_is_default = False
        await self._store.execute("DELETE FROM admin_sessions")
