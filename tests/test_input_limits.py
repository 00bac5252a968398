"""Input limits found by fuzzing (issue 9): video-only fields on image models, free-text token
fields, chat message and part counts, a proxy without a host, a thumbnail that failed to cache,
and the request-line limit aiohttp answers itself. Each refusal is a 400 naming the field, and the
simulator sees nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.flows.request import MAX_MESSAGES, MAX_PARTS

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


def _nothing_sent(sim: Sim) -> None:
    calls = [(e.method, e.path) for e in sim.state.journal]
    assert calls == [], calls


# -- video-only fields on an image model -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("character_options", 5),
        ("character_options", {"username": "kitty"}),
        ("character_options", "x"),
        ("remix_target_id", "s_" + "a" * 32),
        ("remix_target_id", 5),
    ],
)
async def test_video_only_fields_on_an_image_model_are_400(
    ready: TestClient, sim: Sim, name: str, value: Any
) -> None:
    body = chat("sora-image", "a cat", **{name: value})
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 400, await resp.text()
    err = _error(await resp.json())
    assert err["param"] == name and name in err["message"] and "image" in err["message"]
    _nothing_sent(sim)


async def test_absent_video_fields_on_an_image_model_still_generate(
    ready: TestClient, sim: Sim
) -> None:
    body = chat("sora-image", "a cat", remix_target_id=None, character_options=None)
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    assert len(sim.state.calls("POST", "/backend/video_gen")) == 1


# -- free-text token fields ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("client_id", "c" * 100_000),
        ("client_id", "app id with spaces"),
        ("remark", "r" * 501),
        ("proxy", "http://" + "h" * 3000 + ":1"),
        ("proxy", "http://" + "h" * 100 + ":1"),
        ("proxy", "socks5://./"),
        ("token", "t" * 100_000),
        ("st", "s" * 100_000),
        ("rt", "rt_" + "r" * 100_000),
    ],
)
async def test_token_text_fields_are_capped(
    ready: TestClient, sim: Sim, name: str, value: str
) -> None:
    admin = await admin_headers(ready)
    before = await (await ready.get("/api/tokens", headers=KEY)).json()
    body: dict[str, Any] = {name: value}
    if name not in ("token", "st", "rt"):
        body["token"] = sim.state.add_account().access_token
    sim.state.clear_journal()
    resp = await ready.post("/api/tokens", json=body, headers=admin)
    assert resp.status == 400, (await resp.text())[:300]
    err = _error(await resp.json())
    assert err["param"] == name, err
    assert value not in err["message"] and len(err["message"]) < 500
    _nothing_sent(sim)
    assert await (await ready.get("/api/tokens", headers=KEY)).json() == before


async def test_conversions_and_import_cap_client_id_and_email(ready: TestClient, sim: Sim) -> None:
    admin = await admin_headers(ready)
    resp = await ready.post(
        "/api/tokens/rt2at", json={"rt": "rt_" + "a" * 40, "client_id": "c" * 300}, headers=admin
    )
    assert resp.status == 400 and _error(await resp.json())["param"] == "client_id"
    entries = [
        {"access_token": sim.state.add_account().access_token, "client_id": "c" * 100_000},
        {"access_token": sim.state.add_account().access_token, "email": "e" * 400 + "@x.io"},
    ]
    sim.state.clear_journal()
    resp = await ready.post("/api/tokens/import", json=entries, headers=admin)
    assert resp.status == 200, await resp.text()
    text = (await resp.read()).decode()
    assert "client_id" in text and "email" in text and "c" * 300 not in text
    _nothing_sent(sim)


# -- chat message and part counts ------------------------------------------------------------


async def test_too_many_messages_is_400(ready: TestClient, sim: Sim) -> None:
    messages = [{"role": "user", "content": "a cat"}] * (MAX_MESSAGES + 1)
    body = {"model": "sora-image", "messages": messages}
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 400, await resp.text()
    err = _error(await resp.json())
    assert err["param"] == "messages" and str(MAX_MESSAGES) in err["message"]
    _nothing_sent(sim)


async def test_too_many_content_parts_is_400(ready: TestClient, sim: Sim) -> None:
    parts = [{"type": "text", "text": "cat"}] * (MAX_PARTS + 1)
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", parts), headers=KEY)
    assert resp.status == 400, await resp.text()
    err = _error(await resp.json())
    assert err["param"] == "messages" and str(MAX_PARTS) in err["message"]
    _nothing_sent(sim)


async def test_messages_and_parts_at_the_limit_are_served(ready: TestClient, sim: Sim) -> None:
    history = [{"role": "assistant", "content": "ok"}] * (MAX_MESSAGES - 1)
    parts = [{"type": "text", "text": "cat"}] * MAX_PARTS
    body = {"model": "sora-image", "messages": [*history, {"role": "user", "content": parts}]}
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    assert len(sim.state.calls("POST", "/backend/video_gen")) == 1


# -- settings: a proxy without a host --------------------------------------------------------


@pytest.mark.parametrize(
    "proxy", ["socks5://", "socks5://:1080", "socks5://user:pw@", "http://", "socks5://./"]
)
async def test_settings_proxy_without_a_host_is_400(client: TestClient, proxy: str) -> None:
    admin = await admin_headers(client)
    before = await (await client.get("/api/admin/settings", headers=admin)).json()
    resp = await client.put(
        "/api/admin/settings", json={"values": {"upstream.proxy": proxy}}, headers=admin
    )
    assert resp.status == 400, await resp.text()
    err = _error(await resp.json())
    assert err["param"] == "upstream.proxy" and "host" in err["message"]
    assert await (await client.get("/api/admin/settings", headers=admin)).json() == before


# -- a thumbnail that could not be cached ----------------------------------------------------


async def test_a_failed_thumbnail_says_why(ready: TestClient, sim: Sim) -> None:
    sim.state.inject("GET", "/media/*/thumb.png", "500", times=None)
    resp = await ready.post("/v1/videos", json={"prompt": "a dog", "seconds": "10"}, headers=KEY)
    assert resp.status == 200, await resp.text()
    video_id = (await resp.json())["id"]
    run = ready.app[keys.JOBS].run_of(video_id)
    if run is not None:
        await asyncio.wait_for(run.done.wait(), 60)
    video = await (await ready.get(f"/v1/videos/{video_id}", headers=KEY)).json()
    assert video["status"] == "completed", video  # the thumbnail is secondary
    assert sim.state.calls("GET", "/media/*/thumb.png"), "the thumbnail was never fetched"
    resp = await ready.get(f"/v1/videos/{video_id}/content", headers=KEY)
    assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"
    resp = await ready.get(f"/v1/videos/{video_id}/content?variant=thumbnail", headers=KEY)
    assert resp.status == 404, await resp.text()
    err = _error(await resp.json())
    assert err["message"].startswith("The thumbnail could not be cached: "), err
    assert "500" in err["message"] and "gave no" not in err["message"], err


# -- aiohttp's own limits --------------------------------------------------------------------


async def test_request_line_limit_is_a_clean_400(ready: TestClient) -> None:
    """aiohttp's parser answers a request line over 8190 bytes itself (README: Limits); the answer
    is a 400, the connection closes, and the service keeps serving."""
    host, port = ready.server.host, ready.server.port
    cases = [(8000, 0, b"404"), (9000, 0, b"400"), (100, 9000, b"400")]
    for line, header, status in cases:
        reader, writer = await asyncio.open_connection(host, port)
        path = "/v1/nope?q=" + "x" * (line - len("GET /v1/nope?q= HTTP/1.1"))
        extra = f"X-Long: {'h' * header}\r\n" if header else ""
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        await writer.wait_closed()
        assert raw.split(b" ", 2)[1] == status, raw[:300]
        if status == b"404":  # what the application answers: the envelope
            assert b'"error"' in raw and b"application/json" in raw, raw[:300]
    resp = await ready.get("/v1/models", headers=KEY)
    assert resp.status == 200
