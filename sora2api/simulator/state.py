"""SimState: accounts, tokens, faults, scenarios, journal; the one object tests drive."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import math
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import asdict
from typing import Any

from . import jwt
from .faults import FAULT_KINDS
from .ids import IdMaker
from .records import (
    OUTCOMES,
    SCENARIO_TARGETS,
    AccessToken,
    Account,
    Cameo,
    Character,
    Draft,
    Fault,
    JournalEntry,
    MediaSpec,
    Post,
    Profile,
    Scenario,
    ScenarioRule,
    Settings,
    Task,
)
from .seed import seed_feed

PLAN_TITLES: dict[str, str | None] = {
    "chatgpt_plus": "ChatGPT Plus",
    "chatgptplusplan": "ChatGPT Plus",
    "chatgpt_pro": "ChatGPT Pro",
    "chatgpt_team": "ChatGPT Business",
    "free": None,
}
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._]{2,29}$")
_SUBSCRIPTION_SECONDS = 30 * 86400


class OAuthError(Exception):
    """An OAuth-style failure of /oauth/token (`{"error", "error_description"}`)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class SimState:
    """Everything the simulator knows. Created by create_simulator(); reachable via SIM_STATE."""

    def __init__(self, settings: Settings | None = None, *, seed: int | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._initial = (self.settings.time_scale, self.settings.strict_sentinel)
        self._seed = seed
        # Set on app shutdown: wakes hanging handlers and stops media streams.
        self.closing = asyncio.Event()
        self._init_data()

    def _init_data(self) -> None:
        self.rng = random.Random(self._seed)
        self.ids = IdMaker(self.rng)
        self.secret = self.rng.randbytes(32)
        self._offset = 0.0
        self._email_counter = 0
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.sessions: dict[str, str] = {}  # ST -> email
        self.refresh_tokens: dict[str, str] = {}  # current RT -> email
        self.used_refresh_tokens: dict[str, str] = {}  # rotated-out RT -> email
        self.faults: list[Fault] = []
        self.scenarios: list[ScenarioRule] = []
        self.journal: list[JournalEntry] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.media: dict[str, MediaSpec] = {}
        self.uploads: dict[str, str] = {}  # media id -> email
        self.asset_pointers: dict[str, str] = {}  # pointer -> email
        self.cameos: dict[str, Cameo] = {}
        self.characters: dict[str, Character] = {}
        self.profiles: dict[str, Profile] = {}
        self.posts: dict[str, Post] = {}
        self.tasks: dict[str, Task] = {}
        self.drafts: dict[str, Draft] = {}
        profiles, posts = seed_feed(self.ids, self.rng, self.wall())
        for profile in profiles:
            self.profiles[profile.user_id] = profile
            self.media[profile.user_id] = MediaSpec(kind="png")
        for post in posts:
            self.posts[post.id] = post
            self.media[post.generation_id] = MediaSpec(
                kind="mp4",
                duration_ms=post.n_frames * 1000 // 30,
                width=post.width,
                height=post.height,
            )

    def reset(self, *, keep_accounts: bool = False) -> None:
        """Forget everything (settings back to the construction values), optionally keep accounts."""
        accounts = list(self.accounts.values()) if keep_accounts else []
        tokens, sessions, rts = self.tokens, self.sessions, self.refresh_tokens
        self.settings = Settings(time_scale=self._initial[0], strict_sentinel=self._initial[1])
        self._init_data()
        for account in accounts:
            account.polls.clear()
            self.accounts[account.email] = account
            self.media[account.user_id] = MediaSpec(kind="png")
        if keep_accounts:
            emails = set(self.accounts)
            self.tokens = {k: v for k, v in tokens.items() if v.email in emails}
            self.sessions = {k: v for k, v in sessions.items() if v in emails}
            self.refresh_tokens = {k: v for k, v in rts.items() if v in emails}

    # -- clocks ------------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator clock (monotonic) that task progress is measured on."""
        return time.monotonic() + self._offset

    def wall(self) -> float:
        """Unix time as the simulator sees it (token `exp`, signed URL `se=`)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump both clocks forward, e.g. to finish tasks or expire tokens without sleeping."""
        self._offset += seconds

    # -- accounts and tokens -----------------------------------------------------------------

    def add_account(
        self,
        email: str | None = None,
        *,
        plan: str = "chatgpt_plus",
        sora2: bool = True,
        username: str | None = "auto",
        quota: int = 30,
        max_concurrent_videos: int = 3,
        at_ttl: float = 3600.0,
        country_blocked: str | None = None,
        name: str | None = None,
        client_id: str | None = None,
    ) -> Account:
        """Create an account with a fresh AT, ST and RT."""
        if email is None:
            self._email_counter += 1
            email = f"user{self._email_counter}@sim.example"
            while email in self.accounts:
                self._email_counter += 1
                email = f"user{self._email_counter}@sim.example"
        if email in self.accounts:
            raise ValueError(f"account {email} already exists")
        local = re.sub(r"[^a-z0-9]", "", email.split("@")[0].lower()) or "user"
        if username == "auto":
            username = f"{local[:20]}{self.rng.randrange(100, 1000)}"
            while len(username) < 3 or self.username_taken(username):
                username = f"{local[:20]}{self.rng.randrange(1000, 100000)}"
        account = Account(
            email=email,
            name=name if name is not None else local.capitalize(),
            username=username,
            user_id=self.ids.user(),
            plan=plan,
            plan_end=self.wall() + _SUBSCRIPTION_SECONDS,
            sora2=sora2,
            invite_code=self.ids.invite_code(),
            redeemed_count=0,
            total_count=4,
            country_blocked=country_blocked,
            quota=quota,
            quota_total=quota,
            quota_resets_at=self.now() + self.settings.scaled(self.settings.quota_reset_seconds),
            max_concurrent_videos=max_concurrent_videos,
            at_ttl=at_ttl,
            access_token="",
            session_token="eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0.." + self.ids.opaque(160),
            refresh_token="rt_" + self.ids.opaque(43),
            client_id=client_id,
        )
        self.accounts[email] = account
        self.media[account.user_id] = MediaSpec(kind="png")
        self.sessions[account.session_token] = email
        self.refresh_tokens[account.refresh_token] = email
        account.access_token = self.mint_access_token(account)
        return account

    def account(self, email: str) -> Account:
        """The account with this email (KeyError if unknown)."""
        return self.accounts[email]

    def mint_access_token(self, account: Account, ttl: float | None = None) -> str:
        """A new JWT AT for the account; a negative ttl gives an already-expired token."""
        iat = self.wall()
        exp = iat + (account.at_ttl if ttl is None else ttl)
        jti = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        claims = {
            "aud": ["https://api.openai.com/v1"],
            "client_id": account.client_id or "app_sim",
            "exp": int(exp),
            "https://api.openai.com/auth": {
                "chatgpt_plan_type": account.plan.removeprefix("chatgpt_"),
                "user_id": account.user_id,
            },
            "https://api.openai.com/profile": {"email": account.email, "email_verified": True},
            "iat": int(iat),
            "iss": "https://auth.openai.com",
            "jti": jti,
            "nbf": int(iat),
            "scp": ["openid", "email", "profile", "offline_access"],
            "sub": "auth0|" + account.user_id.removeprefix("user-"),
        }
        token = jwt.encode(claims, self.secret)
        self.tokens[token] = AccessToken(
            token=token, email=account.email, jti=jti, iat=iat, exp=exp
        )
        return token

    def account_for_token(self, at: str) -> Account | None:
        """The account an AT was minted for (whatever the token's state), else None."""
        record = self.tokens.get(at)
        return self.accounts.get(record.email) if record is not None else None

    def invalidate(self, account: Account, *, sessions: bool = False) -> None:
        """Invalidate every AT minted so far (401 token_invalidated); optionally its ST and RT too.

        ATs minted afterwards (via ST or RT) work again, which is how a real re-login behaves.
        """
        for record in self.tokens.values():
            if record.email == account.email:
                record.revoked = True
        if sessions:
            self.expire_session(account)
            self.refresh_tokens.pop(account.refresh_token, None)

    def expire_session(self, account: Account) -> None:
        """Make the account's session token stop converting to ATs."""
        account.session_valid = False

    def deactivate(self, account: Account) -> None:
        """The account is deleted or banned: every call answers 401 account_deactivated."""
        account.deactivated = True

    def session_login(self, session_token: str) -> tuple[Account, str, float] | None:
        """ST -> (account, new AT, AT expiry), or None when the ST is unknown or expired."""
        email = self.sessions.get(session_token)
        account = self.accounts.get(email) if email else None
        if account is None or not account.session_valid or account.deactivated:
            return None
        at = self.mint_access_token(account)
        return account, at, self.tokens[at].exp

    def refresh(self, refresh_token: str, client_id: str | None) -> tuple[Account, str, str]:
        """RT -> (account, new AT, new RT); the old RT stops working at once."""
        email = self.refresh_tokens.get(refresh_token)
        if email is None:
            if refresh_token in self.used_refresh_tokens:
                raise OAuthError(400, "invalid_grant", "Refresh token has already been used.")
            raise OAuthError(400, "invalid_grant", "Unknown or invalid refresh token.")
        account = self.accounts[email]
        if account.client_id is not None and client_id != account.client_id:
            raise OAuthError(400, "invalid_grant", "Refresh token was issued to another client.")
        if account.deactivated:
            raise OAuthError(401, "access_denied", "The account has been deactivated.")
        del self.refresh_tokens[refresh_token]
        self.used_refresh_tokens[refresh_token] = email
        account.refresh_token = "rt_" + self.ids.opaque(43)
        self.refresh_tokens[account.refresh_token] = email
        return account, self.mint_access_token(account), account.refresh_token

    def username_taken(self, username: str) -> bool:
        """Whether username/check must say unavailable (invalid names count as taken)."""
        name = username.lower()
        if not _USERNAME_RE.match(name) or name in self.settings.taken_usernames:
            return True
        if any((a.username or "").lower() == name for a in self.accounts.values()):
            return True
        if any(p.username.lower() == name for p in self.profiles.values()):
            return True
        return any(c.username.lower() == name and not c.deleted for c in self.characters.values())

    def refresh_quota(self, account: Account) -> None:
        """Refill the quota once its window has passed."""
        now = self.now()
        if now >= account.quota_resets_at:
            account.quota = account.quota_total
            account.quota_resets_at = now + self.settings.scaled(self.settings.quota_reset_seconds)

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        times: int | None = 1,
        token: str | None = None,
        email: str | None = None,
        after: int = 0,
        **params: Any,
    ) -> None:
        """Make the next matching request(s) fail with `kind` (see faults.FAULT_KINDS).

        `path` is a glob over the path from the host root (e.g. "/backend/nf/pending*");
        `method` may be "*". The first `after` matching calls pass, then `times` calls fail
        (None: every call). `token` matches the bearer AT, the session cookie or the RT.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        self.faults.append(
            Fault(method.upper(), path, kind, times, token, email, after, dict(params))
        )

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self.faults.clear()

    def match_fault(
        self, method: str, path: str, credentials: tuple[str, ...], email: str | None
    ) -> Fault | None:
        """Count this request against the faults; return the one that fires, if any."""
        for fault in list(self.faults):
            if fault.method not in ("*", method) or not fnmatch.fnmatchcase(path, fault.path):
                continue
            if fault.token is not None and fault.token not in credentials:
                continue
            if fault.email is not None and fault.email != email:
                continue
            fault.seen += 1
            if fault.seen <= fault.after:
                continue
            fault.fired += 1
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
            return fault
        return None

    # -- scenarios ---------------------------------------------------------------------------

    def scenario(
        self,
        outcome: str = "success",
        *,
        email: str | None = None,
        target: str | None = None,
        times: int | None = 1,
        **fields: Any,
    ) -> Scenario:
        """Script the next task(s): outcome success|violation|fail|vanish plus Scenario fields.

        `target` limits it to "image", "video" or "cameo" tasks; `email` to one account (account
        rules win over global ones); `times=None` keeps it for every later task.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; known: {sorted(OUTCOMES)}")
        if target is not None and target not in SCENARIO_TARGETS:
            raise ValueError(f"unknown target {target!r}; known: {sorted(SCENARIO_TARGETS)}")
        if fields.get("plateau") is True:
            fields["plateau"] = math.inf
        elif fields.get("plateau") is False:
            fields["plateau"] = 0.0
        scenario = Scenario(outcome=outcome, **fields)
        self.scenarios.append(ScenarioRule(scenario, email, target, times))
        return scenario

    def clear_scenarios(self) -> None:
        """Drop every scripted scenario."""
        self.scenarios.clear()

    def take_scenario(self, email: str, target: str) -> Scenario:
        """The scenario for a new task of this account (consumes one use of the rule)."""
        ordered = [r for r in self.scenarios if r.email == email] + [
            r for r in self.scenarios if r.email is None
        ]
        for rule in ordered:
            if rule.target not in (None, target):
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self.scenarios.remove(rule)
            return rule.scenario
        return Scenario()

    # -- journal -----------------------------------------------------------------------------

    def calls(self, method: str = "*", path_glob: str = "*") -> list[JournalEntry]:
        """Journal entries matching a method ("*" for any) and a path glob."""
        method = method.upper()
        return [
            e
            for e in self.journal
            if method in ("*", e.method) and fnmatch.fnmatchcase(e.path, path_glob)
        ]

    def clear_journal(self) -> None:
        """Empty the journal and the call counters."""
        self.journal.clear()
        self.counts.clear()
        for account in self.accounts.values():
            account.polls.clear()

    def polls(self, email: str, path_glob: str = "*") -> int:
        """How many requests this account made to paths matching the glob."""
        counter = self.accounts[email].polls
        return sum(n for path, n in counter.items() if fnmatch.fnmatchcase(path, path_glob))

    # -- media -------------------------------------------------------------------------------

    def sign(self, path: str, expiry: int | None) -> str:
        """The `sig` query value for a media path."""
        msg = f"{path}|{expiry}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()[:24]

    def media_url(self, origin: str, path: str) -> str:
        """An absolute signed link, expiring after settings.media_ttl."""
        ttl = self.settings.media_ttl
        if ttl is None:
            return f"{origin}{path}?sig={self.sign(path, None)}"
        expiry = int(self.wall() + ttl)
        return f"{origin}{path}?se={expiry}&sig={self.sign(path, expiry)}"

    def check_media(self, path: str, query: dict[str, str]) -> str:
        """ "ok", "expired" or "forbidden" for a media request."""
        raw_expiry = query.get("se")
        try:
            expiry = int(raw_expiry) if raw_expiry is not None else None
        except ValueError:
            return "forbidden"
        if not hmac.compare_digest(query.get("sig", ""), self.sign(path, expiry)):
            return "forbidden"
        if expiry is not None and self.wall() > expiry:
            return "expired"
        return "ok"

    # -- views for the control API -----------------------------------------------------------

    def describe_account(self, account: Account) -> dict[str, Any]:
        """An account as the control API shows it (tokens included: they are simulator-made)."""
        data = asdict(account)
        data["polls"] = dict(account.polls)
        return data
