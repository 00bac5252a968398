"""The token pool: eligibility with reasons, atomic least-busy leasing, a fair queue, reactions,
and the one writer of token rows (transition)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

from . import registry
from .errors import NotFoundError, UnavailableError
from .providers import DEFAULT_PROVIDER
from .settings import Settings
from .store import Row, Store, TokenRow
from .transitions import Change, constant, reacted, succeeded
from .upstream.errors import UpstreamFailure

log = logging.getLogger(__name__)

KINDS = ("image", "video")


@dataclass(slots=True)
class TokenState:
    """The pool's in-memory view of one token: its row as stored (frozen; a change replaces it
    whole, see TokenPool.transition) plus its live slot counters."""

    token: TokenRow
    busy: dict[str, int] = field(default_factory=lambda: {"image": 0, "video": 0})

    @property
    def id(self) -> int:
        return self.token.id

    @property
    def row(self) -> Row:
        """A snapshot of the row by column name, for code that reads it that way."""
        return self.token.as_dict()

    def limit(self, kind: str, defaults: Any) -> int:
        own = self.token.image_concurrency if kind == "image" else self.token.video_concurrency
        return (
            int(own)
            if own is not None and own >= 0
            else int(getattr(defaults, f"{kind}_concurrency"))
        )

    def serves(self, model: str | None) -> bool:
        """Whether a lease for `model` may take this token: None means a Sora job (Sora tokens
        only); a model id, the accounts whose provider serves it (see registry)."""
        if model is None:
            return self.token.provider == DEFAULT_PROVIDER
        return registry.serves(self.token, model)

    def ineligible(self, kind: str, now: float) -> str | None:
        """Why this token cannot take a `kind` job now (a category word), or None."""
        r = self.token
        if r.status == "disabled":
            return "disabled"
        if r.status in ("expired", "invalid"):
            return r.status
        if r.at_expires and r.at_expires <= now:
            return "expired"
        if r.cooldown_until and r.cooldown_until > now:
            return "cooling down"
        if not (r.image_enabled if kind == "image" else r.video_enabled):
            return f"{kind} disabled"
        problem = registry.account_problem(r, kind)
        if problem is not None:
            return problem
        if kind == "video" and r.quota_remaining == 0 and (r.quota_resets_at or 0) > now:
            return "out of quota"
        return None


@dataclass(frozen=True, slots=True)
class Lease:
    """A held slot on one token. Read `access_token` when calling: a refresh may replace it."""

    pool: TokenPool
    token_id: int
    kind: str

    @property
    def access_token(self) -> str:
        return self.pool.state(self.token_id).token.access_token

    @property
    def proxy(self) -> str | None:
        return self.pool.state(self.token_id).token.proxy or None

    @property
    def email(self) -> str:
        return self.pool.state(self.token_id).token.email or ""


@dataclass(slots=True)
class _Waiter:
    kind: str
    exclude: frozenset[int]
    future: asyncio.Future[TokenState]
    model: str | None = None
    since: float = field(default_factory=time.monotonic)


OnQueued = Callable[[int], Awaitable[None]]
# Observers GET /metrics installs (see metrics.py): seconds a lease waited, and every failure
# reported against an account with that account's provider.
OnWaited = Callable[[str, float], None]
OnFailure = Callable[[str, UpstreamFailure], None]


def _retrieved(task: asyncio.Task[Row]) -> None:
    """Done-callback: mark a transition's exception retrieved (its caller may be cancelled)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("token transition failed: %r", task.exception())


class TokenPool:
    """Owns every token's in-memory state; the only place slots are taken and given back."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._tokens: dict[int, TokenState] = {}
        self._waiters: deque[_Waiter] = deque()
        self._last_pick = 0
        # One per token: transitions of a token run one at a time (see transition()).
        self._locks: dict[int, asyncio.Lock] = {}
        # Bumped on every change of a token row or of the set of tokens (answers built from
        # the rows, such as the /v1/models list, are kept until it moves).
        self.version = 0
        self.on_waited: OnWaited | None = None
        self.on_failure: OnFailure | None = None

    # -- state: every write of a token row goes through transition() ------------------------

    async def load(self) -> None:
        rows = await self._store.tokens.all()
        self._tokens = {r.id: TokenState(r) for r in rows}
        self.version += 1

    def _lock(self, token_id: int) -> asyncio.Lock:
        return self._locks.setdefault(token_id, asyncio.Lock())

    async def transition(self, token_id: int, change: Change) -> Row:
        """The one writer of a token row: `change` decides from the row as it is now, and the
        database and memory take the result together. Returns the row after the change."""
        # A task of its own, shielded: a caller cancelled mid-write must not leave memory and
        # the database apart (the write goes on, and so does the memory update after it).
        task = asyncio.ensure_future(self._transition(token_id, change))
        task.add_done_callback(_retrieved)
        return await asyncio.shield(task)

    async def _transition(self, token_id: int, change: Change) -> Row:
        async with self._lock(token_id):
            t = self.state(token_id)
            before = t.token
            values = change(before.as_dict())
            if not values:
                return before.as_dict()
            values["updated_at"] = time.time()
            # Memory first, so leasing sees a disable or a cooldown at once; the lock keeps every
            # other writer out until the database has it too, and a refused write is undone.
            t.token = replace(before, **values)
            self.version += 1
            self._dispatch()
            try:
                await self._store.tokens.update(token_id, values)
            except Exception:
                t.token = before
                self.version += 1
                self._dispatch()
                raise
            return t.token.as_dict()

    async def update_row(self, token_id: int, values: Mapping[str, Any]) -> Row:
        """Write plain columns (credentials, account data, options); never the state columns."""
        return await self.transition(token_id, constant(values))

    async def insert(self, values: Mapping[str, Any]) -> int:
        """Store a new token and take it into the pool."""
        token_id = await self._store.tokens.insert({"created_at": time.time(), **values})
        # Nobody knows the id before this returns, so nothing can race the read below.
        row = await self._store.tokens.get(token_id)
        assert row is not None
        self._tokens[token_id] = TokenState(row)
        self.version += 1
        self._dispatch()
        return token_id

    async def delete(self, token_id: int) -> None:
        """Remove a token for good (jobs holding it keep their slot until they end)."""
        async with self._lock(token_id):
            self.state(token_id)
            await self._store.tokens.delete(token_id)
            self._tokens.pop(token_id, None)
        self._locks.pop(token_id, None)
        self.version += 1
        self._dispatch()

    async def reload(self, token_id: int) -> None:
        """Re-read one row written to the database from outside the pool (tests, tools)."""
        async with self._lock(token_id):
            row = await self._store.tokens.get(token_id)
            if row is None:
                self._tokens.pop(token_id, None)
            elif token_id in self._tokens:
                self._tokens[token_id].token = row
            else:
                self._tokens[token_id] = TokenState(row)
        self.version += 1
        self._dispatch()

    def state(self, token_id: int) -> TokenState:
        try:
            return self._tokens[token_id]
        except KeyError:
            raise NotFoundError(f"Token {token_id} not found", param="token_id") from None

    def waiting(self) -> list[tuple[str, float]]:
        """(kind, monotonic time it joined) of every lease waiting in the queue."""
        return [(w.kind, w.since) for w in self._waiters]

    def tokens(self) -> list[TokenState]:
        return list(self._tokens.values())

    def rows(self) -> list[TokenRow]:
        """Every token's row as it is now."""
        return [t.token for t in self._tokens.values()]

    def busy(self, token_id: int, kind: str) -> int:
        t = self._tokens.get(token_id)
        return t.busy[kind] if t else 0

    # -- eligibility and reasons -----------------------------------------------------------

    def unavailable_reason(
        self, kind: str, exclude: Iterable[int] = (), model: str | None = None
    ) -> str:
        """Per-category counts of why no token can take a `kind` job, e.g. '2 expired, 1 disabled'."""
        scope = [t for t in self._tokens.values() if t.serves(model)]
        if not scope:
            if model is not None:
                return (
                    f"No account serves model {model!r}: add one in the admin panel or with "
                    "POST /api/tokens"
                )
            return "no tokens: add one in the admin panel or with POST /api/tokens"
        now = time.time()
        excluded = set(exclude)
        counts: dict[str, int] = {}
        soonest: dict[str, float] = {}
        for t in scope:
            word = t.ineligible(kind, now) or (
                "already failed this job" if t.id in excluded else "busy"
            )
            counts[word] = counts.get(word, 0) + 1
            until = None
            if word == "cooling down":
                until = t.token.cooldown_until
            elif word == "out of quota":
                until = t.token.quota_resets_at
            if until:
                soonest[word] = min(soonest.get(word, until), until)
        parts = []
        for word, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            text = f"{n} {word}"
            if word in soonest:
                text += f" until {time.strftime('%H:%M', time.localtime(soonest[word]))}"
            parts.append(text)
        what = f"model {model}" if model is not None else f"{kind} generation"
        return f"No token available for {what}: " + ", ".join(parts)

    def _pick(
        self, kind: str, exclude: frozenset[int], model: str | None = None
    ) -> TokenState | None:
        now = time.time()
        defaults = self._settings.current.pool
        best: TokenState | None = None
        best_key: tuple[float, int] | None = None
        span = (max(self._tokens) + 1) if self._tokens else 1
        for t in self._tokens.values():
            if t.id in exclude or not t.serves(model) or t.ineligible(kind, now) is not None:
                continue
            limit = t.limit(kind, defaults)
            if limit and t.busy[kind] >= limit:
                continue
            # Least busy first; among equals, the next id after the last pick (round-robin).
            key = (t.busy["image"] + t.busy["video"], (t.id - self._last_pick - 1) % span)
            if best_key is None or key < best_key:
                best, best_key = t, key
        if best is not None:
            best.busy[kind] += 1
            self._last_pick = best.id
        return best

    def _has_candidate(self, kind: str, exclude: frozenset[int], model: str | None = None) -> bool:
        now = time.time()
        return any(
            t.id not in exclude and t.serves(model) and t.ineligible(kind, now) is None
            for t in self._tokens.values()
        )

    def _dispatch(self) -> None:
        """Hand freed capacity to waiters in arrival order (a later waiter never jumps the line
        for a token an earlier one could take)."""
        for w in list(self._waiters):
            if w.future.done():
                self._waiters.remove(w)
                continue
            tok = self._pick(w.kind, w.exclude, w.model)
            if tok is not None:
                self._waiters.remove(w)
                w.future.set_result(tok)
            elif not self._has_candidate(w.kind, w.exclude, w.model):
                # Its last eligible token went away (expired, disabled, cooling down): nothing
                # would wake this waiter before queue_timeout, so fail now with the reason.
                self._waiters.remove(w)
                w.future.set_exception(
                    UnavailableError(self.unavailable_reason(w.kind, w.exclude, w.model))
                )

    def _release(self, token_id: int, kind: str) -> None:
        t = self._tokens.get(token_id)
        if t is not None and t.busy[kind] > 0:
            t.busy[kind] -= 1
        self._dispatch()

    # -- leasing ---------------------------------------------------------------------------

    async def _acquire(
        self,
        kind: str,
        exclude: frozenset[int],
        on_queued: OnQueued | None,
        model: str | None = None,
    ) -> TokenState:
        tok = self._pick(kind, exclude, model) if not self._waiters else None
        if tok is not None:
            if self.on_waited is not None:
                self.on_waited(kind, 0.0)
            return tok
        if not self._has_candidate(kind, exclude, model):
            raise UnavailableError(self.unavailable_reason(kind, exclude, model))
        fut: asyncio.Future[TokenState] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(kind, exclude, fut, model)
        self._waiters.append(waiter)
        self._dispatch()
        timeout = self._settings.current.generation.queue_timeout
        delivered = False
        try:
            if not fut.done() and on_queued is not None:
                await on_queued(len(self._waiters))
            async with asyncio.timeout(timeout):
                tok = await asyncio.shield(fut)
            delivered = True
            if self.on_waited is not None:
                self.on_waited(kind, time.monotonic() - waiter.since)
            return tok
        except TimeoutError:
            raise UnavailableError(
                f"Every eligible token stayed busy for {timeout:g} s (queue_timeout). "
                + self.unavailable_reason(kind, exclude, model)
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not delivered:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled() and fut.exception() is None:
                    # A slot was assigned but we leave without it (timeout, cancellation).
                    self._release(fut.result().id, kind)

    @asynccontextmanager
    async def lease(
        self,
        kind: str,
        *,
        exclude: Iterable[int] = (),
        on_queued: OnQueued | None = None,
        token_id: int | None = None,
        model: str | None = None,
    ) -> AsyncIterator[Lease]:
        """Take one slot on the least busy eligible token (or a given one) and give it back
        exactly once when the block ends, however it ends. Without `model` only Sora tokens are
        leased; with one, the accounts of any provider that serve it."""
        if kind not in KINDS:
            raise ValueError(kind)
        if token_id is not None:
            # Resuming a job after a restart: the job already owns this token's slot.
            tok = self.state(token_id)
            tok.busy[kind] += 1
        else:
            tok = await self._acquire(kind, frozenset(exclude), on_queued, model)
        try:
            yield Lease(self, tok.id, kind)
        finally:
            self._release(tok.id, kind)

    # -- reactions -------------------------------------------------------------------------

    async def report_success(self, token_id: int, kind: str) -> None:
        with suppress(NotFoundError):  # deleted meanwhile
            await self.transition(token_id, succeeded(kind, time.time()))

    async def report_failure(
        self, token_id: int, failure: UpstreamFailure, access_token: str | None = None
    ) -> None:
        """Apply the one reaction of the failure's class to the token. Give the access token the
        call used when known: a 401 on one a refresh has replaced meanwhile then changes nothing."""
        if self.on_failure is not None:
            state = self._tokens.get(token_id)
            self.on_failure(state.token.provider if state else "unknown", failure)
        if failure.token_reaction is None:
            return
        log.info("token %d: %s -> %s", token_id, failure.kind.value, failure.token_reaction)
        change = reacted(failure, self._settings.current.pool, time.time(), access_token)
        with suppress(NotFoundError):
            await self.transition(token_id, change)

    def first_usable(self, token_id: int | None = None) -> TokenState:
        """A token for read-only data calls: the given one, else the first active one."""
        if token_id is not None:
            return self.state(token_id)
        now = time.time()
        for t in self._tokens.values():
            if not t.serves(None):
                continue  # read-only data calls are Sora's
            if t.ineligible("image", now) in (None, "image disabled", "cooling down"):
                return t
        raise UnavailableError(self.unavailable_reason("image"))
