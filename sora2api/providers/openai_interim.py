"""INTERIM, to be replaced by providers/openai/ (helper p10-core): the OpenAI-shaped onboarding
alone, so accounts can be added and tested before the provider engine lands. Only `onboard` and
`models` work; generation calls refuse without reaching the upstream (see registry.live_providers).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import ClientSession

from ..upstream.errors import Kind, UpstreamFailure, classify
from .base import Account, AccountInfo, ModelSpec, Submission, TaskStatus

_STEP = "GET /models"
_LIMIT = 4 * 1024 * 1024  # a model list is small; a gateway answering more is not one


def _model_ids(data: Any) -> tuple[str, ...]:
    """Ids from {"data": [...]}, new-api's {"code", "data": {...}} wrap, or a bare list."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UpstreamFailure(Kind.MALFORMED, "no model list in the answer", endpoint=_STEP)
    ids = [m.get("id") if isinstance(m, dict) else m for m in items]
    return tuple(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


class InterimOpenAI:
    """Onboards an OpenAI-Videos-shaped account by listing its models."""

    name = "openai"
    poll_interval = 5.0

    def models(self, account_models: tuple[str, ...]) -> list[ModelSpec]:
        return [
            ModelSpec(id=m, provider=self.name, upstream=m, kind="video") for m in account_models
        ]

    async def onboard(self, http: ClientSession, account: Account) -> AccountInfo:
        url = account.base_url.rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {account.key}", "Accept": "application/json"}
        proxy = account.proxy or None
        if proxy and not proxy.startswith("http"):
            # Going direct instead would leak the admin's choice of route; refuse plainly.
            raise UpstreamFailure(
                Kind.BAD_REQUEST,
                "a SOCKS proxy needs the openai provider package (not merged yet)",
                sent=False,
            )
        try:
            async with (
                asyncio.timeout(30),
                http.get(url, headers=headers, proxy=proxy, allow_redirects=False) as resp,
            ):
                body = await resp.content.read(_LIMIT)
                if not 200 <= resp.status < 300:
                    failure = classify(resp.status, body, resp.content_type, _STEP)
                    failure.retry_after = _seconds(resp.headers.get("Retry-After"))
                    if resp.status == 429 and failure.code != "insufficient_quota":
                        # OpenAI's "Rate limit reached" is a rate limit, whatever Sora's words.
                        failure.kind = Kind.RATE_LIMITED
                    raise failure
        except TimeoutError:
            raise UpstreamFailure(Kind.TIMEOUT, "no answer within 30 s", endpoint=_STEP) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(
                Kind.TRANSPORT, f"{type(exc).__name__}: {exc}", endpoint=_STEP, sent=False
            ) from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamFailure(
                Kind.MALFORMED, "the model list is not JSON", status=resp.status, endpoint=_STEP
            ) from None
        return AccountInfo(models=_model_ids(data))

    async def submit(self, http: ClientSession, account: Account, sub: Submission) -> str:
        raise _not_yet()

    async def status(self, http: ClientSession, account: Account, task_id: str) -> TaskStatus:
        raise _not_yet()

    async def cancel(self, http: ClientSession, account: Account, task_id: str) -> None:
        raise _not_yet()


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the pool's own backoff applies


def _not_yet() -> UpstreamFailure:
    return UpstreamFailure(
        Kind.BAD_REQUEST, "generation on openai accounts is not in this build yet", sent=False
    )
