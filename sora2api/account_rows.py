"""Between a tokens row and a provider: the Account it stands for, what onboarding writes back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from .providers.base import Account, AccountInfo
from .store import TokenRow
from .upstream.errors import UpstreamFailure


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
