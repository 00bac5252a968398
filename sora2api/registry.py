"""The model registry: which public model ids the pooled accounts serve, and what each can do.

Sora's nine models are static (models.py) and served by every usable Sora token. Every other
provider's models come from its accounts: the upstream models an account reported at onboarding
(served_models), narrowed by the admin's restriction (models), mapped by the provider to public
ModelSpecs. An id served by accounts of several providers is served by all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TypeVar

import orjson

from .errors import BadRequestError
from .models import MODELS
from .providers import DEFAULT_PROVIDER
from .providers.base import ModelSpec, Provider
from .providers.gemini import PROVIDER as GEMINI
from .providers.openai import PROVIDER as OPENAI
from .providers.seedance import PROVIDER as SEEDANCE
from .providers.sora.eligibility import sora_problem
from .store import TokenRow

# The live providers, by the name an account row carries. Sora's flows are in providers/sora/.
PROVIDERS: dict[str, Provider] = {OPENAI.name: OPENAI, SEEDANCE.name: SEEDANCE, GEMINI.name: GEMINI}
# Account states that no longer serve anything until the admin acts (a cooldown passes by itself).
_T = TypeVar("_T", int, str)
_DEAD = frozenset({"disabled", "expired", "invalid"})


def provider(name: str) -> Provider:
    """The provider of an account row's `provider` column."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise BadRequestError(
            f"Unknown provider {name!r}; known: {', '.join([DEFAULT_PROVIDER, *PROVIDERS])}",
            param="provider",
        ) from None


def _names(raw: str) -> tuple[str, ...] | None:
    """A JSON list of model names; None for '' (no list)."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str) and v)


@lru_cache(maxsize=1024)
def _specs(name: str, served: str, restricted: str) -> tuple[ModelSpec, ...]:
    # Cached by the row's strings: leasing asks for every token on every pick.
    if name not in PROVIDERS:
        return ()
    upstream = _names(served) or ()
    allowed = _names(restricted)
    if allowed is not None:
        upstream = tuple(m for m in upstream if m in allowed)
    return tuple(PROVIDERS[name].models(upstream))


def account_models(row: TokenRow) -> tuple[ModelSpec, ...]:
    """The public models one (non-Sora) account serves; () for Sora tokens."""
    if row.provider == DEFAULT_PROVIDER:
        return ()
    return _specs(row.provider, row.served_models, row.models)


def account_problem(row: TokenRow, kind: str) -> str | None:
    """A provider's own reason an account cannot take a `kind` job (beyond status, cooldown,
    enabled kinds and quota, which the pool checks for every provider), or None."""
    if row.provider == DEFAULT_PROVIDER:
        return sora_problem(row, kind)
    return None


def serves(row: TokenRow, model_id: str) -> bool:
    """Whether the account offers this public model id."""
    return any(m.id == model_id for m in account_models(row))


def usable(row: TokenRow) -> bool:
    """Not disabled, expired or invalid (a cooling or busy account still serves its models)."""
    return row.status not in _DEAD


def listed_ids(rows: Iterable[TokenRow]) -> list[str]:
    """Every public model id some usable account serves: Sora's first when a Sora token is
    usable, then the providers' in account order."""
    out: dict[str, None] = {}
    rows = [r for r in rows if usable(r)]
    if any(r.provider == DEFAULT_PROVIDER for r in rows):
        out.update(dict.fromkeys(MODELS))
    for row in rows:
        out.update(dict.fromkeys(m.id for m in account_models(row)))
    return list(out)


def resolve(rows: Iterable[TokenRow], model_id: str) -> ModelSpec | None:
    """The spec of a provider model id some usable account serves; None when none does.

    Accounts of several providers may serve one id with different choices: the allowed seconds
    and sizes are then the union (an empty tuple anywhere means the upstream decides)."""
    found = [m for r in rows if usable(r) for m in account_models(r) if m.id == model_id]
    if not found:
        return None
    first = found[0]
    if len(found) == 1:
        return first
    seconds = () if any(not m.seconds for m in found) else _union(m.seconds for m in found)
    sizes = () if any(not m.sizes for m in found) else _union(m.sizes for m in found)
    return ModelSpec(
        id=first.id,
        provider=first.provider,
        upstream=first.upstream,
        kind=first.kind,
        seconds=tuple(sorted(seconds)),
        default_seconds=first.default_seconds,
        sizes=sizes,
        default_size=first.default_size,
        image_input=any(m.image_input for m in found),
        image_roles=first.image_roles,
        remix=any(m.remix for m in found),
        description=first.description,
    )


def _union(groups: Iterable[tuple[_T, ...]]) -> tuple[_T, ...]:
    out: dict[_T, None] = {}
    for group in groups:
        out.update(dict.fromkeys(group))
    return tuple(out)


class ModelListing:
    """The GET /v1/models body, rebuilt only when the pool's rows change (pool.version)."""

    def __init__(self) -> None:
        self._version = -1
        self._body = b""
        self._ids: dict[str, ModelSpec | None] = {}

    def _refresh(self, rows: Callable[[], Iterable[TokenRow]], version: int) -> None:
        if version == self._version:
            return  # the hot path: GET /v1/models reads no row while nothing changed
        listed = list(rows())
        self._ids = {m: (None if m in MODELS else resolve(listed, m)) for m in listed_ids(listed)}
        self._body = orjson.dumps(
            {"object": "list", "data": [model_object(m, s) for m, s in self._ids.items()]}
        )
        self._version = version

    def body(self, rows: Callable[[], Iterable[TokenRow]], version: int) -> bytes:
        self._refresh(rows, version)
        return self._body

    def find(
        self, rows: Callable[[], Iterable[TokenRow]], version: int, model_id: str
    ) -> dict[str, object] | None:
        """One model object: Sora's nine always answer, a provider id while it is served."""
        self._refresh(rows, version)
        if model_id in MODELS:
            return model_object(model_id, None)
        if model_id in self._ids:
            return model_object(model_id, self._ids[model_id])
        return None


def model_object(model_id: str, spec: ModelSpec | None) -> dict[str, object]:
    """OpenAI's model object; `owned_by` names the provider serving it, and the extra fields
    say what a request may choose (clients that know only the OpenAI shape ignore them)."""
    base: dict[str, object] = {"id": model_id, "object": "model", "created": 1735689600}
    if spec is None:
        m = MODELS[model_id]
        video = m.kind == "video"
        return base | {
            "owned_by": "sora2api",
            "description": m.description,
            "provider": "sora",
            "kind": m.kind,
            # A Sora id fixes its length and shape: one value each, nothing to choose.
            "seconds": [m.seconds] if video else [],
            "sizes": [],
            "orientation": m.orientation or None,
            "image_input": True,
            "remix": video,
            "styles": video,
            "storyboard": video,
            "characters": video,
        }
    return base | {
        "owned_by": spec.provider,
        "description": spec.description,
        "provider": spec.provider,
        "kind": spec.kind,
        "seconds": list(spec.seconds),
        "default_seconds": spec.default_seconds,
        "sizes": list(spec.sizes),
        "default_size": spec.default_size,
        "image_input": spec.image_input,
        "remix": spec.remix,
        "styles": False,
        "storyboard": False,
        "characters": False,
    }
