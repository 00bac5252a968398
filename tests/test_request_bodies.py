"""The one request-body reader (routes/common.read_object) as clients meet it on every route.

JSON objects everywhere; multipart and url-encoded forms only where the OpenAI API takes them
(videos, images, characters). Every failure is a 400 envelope naming the problem, sent before
anything reaches the upstream.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from .conftest import KEY, Sim
from .helpers import add_token

JSON_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    sim.state.settings.video_seconds = 30
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


async def _refused(resp: Any) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == 400, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return dict(body["error"])


def _sent_nothing(sim: Sim) -> None:
    assert sim.state.calls("POST", "/backend/*") == []


async def test_curl_d_json_reaches_a_form_route_as_json(ready: TestClient, sim: Sim) -> None:
    # `curl -d '{...}'` labels a JSON body as a url-encoded form: read it as the JSON it is.
    resp = await ready.post(
        "/v1/videos", data=b'{"model": "sora-2", "prompt": "a curl cat"}', headers=KEY | JSON_FORM
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["prompt"] == "a curl cat"
    async with asyncio.timeout(30):
        while body["status"] not in ("completed", "failed"):
            await asyncio.sleep(0.05)
            body = await (await ready.get(f"/v1/videos/{body['id']}", headers=KEY)).json()
    assert body["status"] == "completed", body
    (create,) = sim.state.calls("POST", "/backend/nf/create")
    assert create.json["prompt"] == "a curl cat"


async def test_a_form_on_a_json_route_is_named(ready: TestClient, sim: Sim) -> None:
    form = FormData()
    form.add_field("model", "sora-image")
    form.add_field("image", b"\x89PNG", filename="a.png", content_type="image/png")
    err = await _refused(await ready.post("/v1/chat/completions", data=form, headers=KEY))
    assert "JSON object" in err["message"] and "multipart/form-data" in err["message"]
    err = await _refused(
        await ready.post("/api/tokens", data={"token": "x"}, headers=KEY)  # url-encoded
    )
    assert "JSON object" in err["message"] and "x-www-form-urlencoded" in err["message"]
    _sent_nothing(sim)


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/chat/completions", b"", "empty"),
        ("/v1/chat/completions", b"[1, 2]", "must be a JSON object"),
        ("/v1/chat/completions", b"{not json", "not valid JSON"),
        ("/v1/videos", b"", "empty"),
        ("/v1/videos", b"\xff\xfe", "not valid JSON"),
        ("/v1/images/generations", b'"a string"', "must be a JSON object"),
        ("/api/tokens", b"[]", "must be a JSON object"),
        ("/api/tokens", b"{not json", "not valid JSON"),
    ],
)
async def test_bad_json_bodies(
    ready: TestClient, sim: Sim, path: str, body: bytes, words: str
) -> None:
    headers = KEY | {"Content-Type": "application/json"}
    err = await _refused(await ready.post(path, data=body, headers=headers))
    assert words in err["message"], err
    _sent_nothing(sim)


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        # A multipart body whose boundary never appears.
        (b"garbage", "multipart/form-data; boundary=xyz", "form body could not be parsed"),
        # A multipart body with no boundary at all.
        (b"--x\r\n", "multipart/form-data", "form body could not be parsed"),
        # Url-encoded bytes that are not UTF-8.
        (b"prompt=%ff%fe", "application/x-www-form-urlencoded", "form body could not be parsed"),
    ],
)
async def test_bad_form_bodies(
    ready: TestClient, sim: Sim, body: bytes, content_type: str, words: str
) -> None:
    headers = KEY | {"Content-Type": content_type}
    for path in ("/v1/videos", "/v1/images/edits"):
        err = await _refused(await ready.post(path, data=body, headers=headers))
        assert words in err["message"], err
    _sent_nothing(sim)


async def test_token_routes_take_an_empty_body_as_no_fields(ready: TestClient) -> None:
    # POST /api/tokens/{id}/test has no body; an empty body on POST /api/tokens names what is
    # missing rather than the body.
    resp = await ready.post("/api/tokens", data=b"", headers=KEY)
    err = await _refused(resp)
    assert "empty" not in err["message"] and "JSON" not in err["message"], err


async def test_import_reads_text_json_lists_and_objects(ready: TestClient, sim: Sim) -> None:
    from .helpers import admin_headers

    admin = await admin_headers(ready)
    account = sim.state.add_account()
    text = await ready.post(
        "/api/tokens/import",
        data=account.access_token.encode(),
        headers=admin | {"Content-Type": "text/plain"},
    )
    assert text.status == 200, await text.json()
    err = await _refused(
        await ready.post(
            "/api/tokens/import", data=b"\xff\xfe", headers=admin | {"Content-Type": "text/plain"}
        )
    )
    assert "UTF-8" in err["message"]
    err = await _refused(
        await ready.post(
            "/api/tokens/import", data=b"[not json", headers=admin | {"Content-Type": "text/plain"}
        )
    )
    assert "not valid JSON" in err["message"]
    err = await _refused(
        await ready.post("/api/tokens/import", json="just a string", headers=admin)
    )
    assert "JSON object or a list" in err["message"]
