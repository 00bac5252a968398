"""Between a tokens row and a provider: the Account it stands for, what onboarding writes back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from .mask import mask
from .providers.base import Account, AccountInfo
from .store import TokenRow
from .upstream.errors import UpstreamFailure


def json_list(text: str | None) -> list[str] | None:
    """A JSON list column ('' or invalid: None)."""
    if not text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def account_of(row: TokenRow) -> Account:
    """The provider's view of a row: its key, base URL and proxy."""
    return Account(
        id=row.id,
        provider=row.provider,
        key=row.access_token,
        base_url=row.base_url,
        proxy=row.proxy or None,
    )


def models_json(models: Iterable[str] | None) -> str:
    """A JSON list column; '' for None (no restriction) and for an empty list alike."""
    items = list(models or ())
    return orjson.dumps(items).decode() if items else ""


def onboarded_values(info: AccountInfo) -> dict[str, Any]:
    """The columns onboarding learned: the models served, the upstream's name and plan."""
    return {
        "served_models": orjson.dumps(list(info.models)).decode(),
        "name": info.name,
        "plan_title": info.plan,
    }


def step_of(failure: UpstreamFailure) -> str:
    """The step of onboarding that failed, as messages name it."""
    return f"onboarding: {failure.endpoint or 'onboard'}"


def scrub(text: str, key: str) -> str:
    """An upstream's message with the key masked, should it echo the key it refused."""
    return text.replace(key, mask(key)) if len(key) > 8 else text
