"""The backend client against real local servers, and the one-place error classification."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from sora2api.config import build_config
from sora2api.providers.sora.client import SoraClient
from sora2api.settings import Settings
from sora2api.store import Store
from sora2api.upstream.errors import Kind, UpstreamFailure, classify


async def _client(
    tmp_path: Path, base: str, session: aiohttp.ClientSession
) -> tuple[SoraClient, Store]:
    cfg = build_config(
        {"upstream": {"base_url": base}}, source="test", env={}, base_dir=str(tmp_path)
    )
    store = await Store.open(tmp_path / "db.sqlite")
    settings = Settings(cfg, store)
    await settings.load()
    return SoraClient(settings, session), store


async def test_oversized_backend_answer_is_refused(aiohttp_server, tmp_path: Path) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"email": "')
        for _ in range(17 * 16):
            await resp.write(b"x" * 65536)
        await resp.write(b'"}')
        return resp

    app = web.Application()
    app.router.add_get("/backend/me", huge)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client, store = await _client(tmp_path, str(server.make_url("/backend")), session)
        try:
            with pytest.raises(UpstreamFailure) as info:
                await client.me("at")
        finally:
            await store.close()
    assert info.value.kind is Kind.MALFORMED and "larger than 16 MB" in info.value.message


@pytest.mark.parametrize(
    ("status", "body", "ctype", "kind"),
    [
        (
            401,
            b'{"error": {"message": "Your authentication token has been invalidated.", "code": "token_invalidated"}}',
            "application/json",
            Kind.TOKEN_INVALID,
        ),
        (
            401,
            b'{"error": {"message": "expired", "code": "token_expired"}}',
            "application/json",
            Kind.TOKEN_EXPIRED,
        ),
        (403, b"<!DOCTYPE html><title>Just a moment...</title>", "text/html", Kind.CLOUDFLARE),
        (
            429,
            b'{"error": {"message": "slow down", "code": "cf_shield_429"}}',
            "application/json",
            Kind.CLOUDFLARE,
        ),
        (
            429,
            b'{"error": {"message": "Too many requests"}}',
            "application/json",
            Kind.RATE_LIMITED,
        ),
        (
            503,
            b'{"error": {"message": "We\'re under heavy load, please try again later."}}',
            "application/json",
            Kind.HEAVY_LOAD,
        ),
        (
            400,
            b'{"error": {"message": "Hmmm", "code": "sentinel_block"}}',
            "application/json",
            Kind.SENTINEL,
        ),
        (
            400,
            b'{"error": {"message": "Unable to process request", "code": "invalid_request"}}',
            "application/json",
            Kind.BAD_REQUEST,
        ),
        (
            403,
            b'{"error": {"message": "no", "code": "unsupported_country_code", "param": "CN"}}',
            "application/json",
            Kind.COUNTRY,
        ),
        (502, b"", "text/html", Kind.SERVER),
    ],
)
def test_classification(status: int, body: bytes, ctype: str, kind: Kind) -> None:
    failure = classify(status, body, ctype, "POST /nf/create")
    assert failure.kind is kind
    assert failure.describe()  # always a readable sentence, never raw HTML
    assert (
        "<html" not in failure.describe().lower() and "<!doctype" not in failure.describe().lower()
    )
