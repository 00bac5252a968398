"""This server's own result links as request inputs: read from the media cache, never fetched.

A user makes an image, then sends its link back to animate it. The simulator must receive exactly
the bytes of the cached file; an expired link, a traversal attempt and another host's /tmp/ path
are each handled as the URL says, never by reading an arbitrary file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sora2api import keys
from sora2api.simulator import png
from sora2api.simulator.providers import PROVIDER_STATE

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    """The app with one Sora account (quick images and videos)."""
    sim.state.settings.image_seconds = 20
    sim.state.settings.video_seconds = 60
    await add_token(client, sim.state.add_account())
    return client


async def make_image(client: TestClient, sim: Sim) -> tuple[str, bytes]:
    """Generate an image the way a user would; its link and the bytes that link serves."""
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-image", "a red kite"), headers=KEY
    )
    body = await resp.json()
    assert resp.status == 200, body
    url = orjson.loads(body["choices"][0]["message"]["content"])["urls"][0]
    got = await client.get(url[url.index("/tmp/") :])
    assert got.status == 200
    sim.state.clear_journal()
    return url, await got.read()


def animate(url: str, model: str = "sora-video-landscape-10s") -> dict[str, Any]:
    content = [
        {"type": "text", "text": "make it fly"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return chat(model, content)


async def finished(client: TestClient, video_id: str, within: float = 30) -> dict[str, Any]:
    """The video object once the job has ended (polled as an SDK would, bounded)."""
    async with asyncio.timeout(within):
        while True:
            resp = await client.get(f"/v1/videos/{video_id}", headers=KEY)
            body: dict[str, Any] = await resp.json()
            if body["status"] in ("completed", "failed"):
                return body
            await asyncio.sleep(0.05)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_an_image_link_animates_through_chat_with_the_cached_bytes(
    ready: TestClient, sim: Sim
) -> None:
    url, image = await make_image(ready, sim)
    assert url.startswith("http://127.0.0.1:8000/tmp/")  # public_base: not a public address
    resp = await ready.post("/v1/chat/completions", json=animate(url), headers=KEY)
    body = await resp.json()
    assert resp.status == 200, body
    assert orjson.loads(body["choices"][0]["message"]["content"])["type"] == "video"
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["sha256"] == sha(image)
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1


async def test_a_link_on_the_host_the_request_came_to_is_read_from_the_cache(
    ready: TestClient, sim: Sim
) -> None:
    url, image = await make_image(ready, sim)
    # The same file under the Host this request reaches (not public_url): still ours.
    own = str(ready.make_url(url[url.index("/tmp/") :]))
    assert not own.startswith("http://127.0.0.1:8000/")
    resp = await ready.post("/v1/chat/completions", json=animate(own), headers=KEY)
    assert resp.status == 200, await resp.text()
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["sha256"] == sha(image)


async def test_an_image_link_is_an_input_reference_of_a_gateway_video(
    ready: TestClient, sim: Sim
) -> None:
    gateway = sim.server.app[PROVIDER_STATE]
    gateway.settings.run_seconds = 60.0
    account = gateway.add_account("openai", name="gw1")
    added = await ready.post(
        "/api/tokens",
        json={"provider": "openai", "token": account.key, "base_url": sim.url + "/v1"},
        headers=await admin_headers(ready),
    )
    assert added.status == 201, await added.text()
    url, image = await make_image(ready, sim)
    resp = await ready.post(
        "/v1/videos",
        json={"model": "sora-2", "prompt": "make it fly", "input_reference": {"image_url": url}},
        headers=KEY,
    )
    video = await resp.json()
    assert resp.status == 200, video
    assert (await finished(ready, video["id"]))["status"] == "completed"
    (create,) = sim.state.calls("POST", "/v1/videos")
    assert create.form["input_reference"]["sha256"] == sha(image)
    assert create.form["input_reference"]["size"] == len(image)


async def test_an_image_link_is_an_input_reference_of_a_sora_video(
    ready: TestClient, sim: Sim
) -> None:
    url, image = await make_image(ready, sim)
    resp = await ready.post(
        "/v1/videos",
        json={"model": "sora-2", "prompt": "make it fly", "input_reference": {"image_url": url}},
        headers=KEY,
    )
    video = await resp.json()
    assert resp.status == 200, video
    assert (await finished(ready, video["id"]))["status"] == "completed"
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["sha256"] == sha(image)


async def test_an_image_link_is_the_image_of_an_edit(ready: TestClient, sim: Sim) -> None:
    url, image = await make_image(ready, sim)
    body = {"prompt": "make it blue", "images": [{"image_url": url}]}
    resp = await ready.post("/v1/images/edits", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["sha256"] == sha(image)


async def test_an_expired_link_is_a_400_naming_the_field(ready: TestClient, sim: Sim) -> None:
    url, _ = await make_image(ready, sim)
    media = ready.app[keys.MEDIA]
    name = url.rsplit("/", 1)[1]
    path = media.dir / name
    old = time.time() - ready.app[keys.SETTINGS].current.storage.media_ttl - 10
    os.utime(path, (old, old))  # past media_ttl: the pruner would delete it next pass
    resp = await ready.post("/v1/chat/completions", json=animate(url), headers=KEY)
    err = (await resp.json())["error"]
    assert resp.status == 400, err
    assert err["param"] == "image_url" and "expired" in err["message"], err
    path.unlink()  # gone altogether: the same answer, for /v1/videos's field
    resp = await ready.post(
        "/v1/videos",
        json={"model": "sora-2", "prompt": "x", "input_reference": {"image_url": url}},
        headers=KEY,
    )
    err = (await resp.json())["error"]
    assert resp.status == 400, err
    assert err["param"] == "input_reference" and "expired" in err["message"], err
    assert not sim.state.calls("POST", "/backend/*")  # nothing reached the upstream


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/../x",
        "/tmp/%2e%2e/x",
        "/tmp/..%2Fdb.sqlite",
        "/tmp/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/tmp/..%5Cdb.sqlite",
        "/tmp/00000000000000000000000000000000.png/../../db.sqlite",
    ],
)
async def test_traversal_through_an_own_link_is_a_400(
    ready: TestClient, sim: Sim, path: str
) -> None:
    url = "http://127.0.0.1:8000" + path
    resp = await ready.post("/v1/chat/completions", json=animate(url), headers=KEY)
    err = (await resp.json())["error"]
    assert resp.status == 400, err
    assert not sim.state.calls("POST", "/backend/*")


async def test_another_hosts_tmp_path_still_goes_through_the_guard(
    make_client: MakeClient,
    sim: Sim,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    elsewhere = png((10, 200, 30))
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=elsewhere, content_type="image/png")

    other_app = web.Application()
    other_app.router.add_get("/tmp/{name}", serve)
    other = await aiohttp_server(other_app)

    # Refused by the guard by default: another origin is not ours, whatever its path.
    client = await make_client()
    sim.state.settings.video_seconds = 60
    await add_token(client, sim.state.add_account())
    url, image = await make_image(client, sim)
    foreign = str(other.make_url("/tmp/" + url.rsplit("/", 1)[1]))
    resp = await client.post("/v1/chat/completions", json=animate(foreign), headers=KEY)
    err = (await resp.json())["error"]
    assert resp.status == 400 and "not a public address" in err["message"], err
    assert hits == []
    await client.close()

    # With private URLs allowed, the guard fetches it over the network: the other host's bytes.
    client = await make_client(security={"allow_private_urls": True})
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    resp = await client.post("/v1/chat/completions", json=animate(foreign), headers=KEY)
    assert resp.status == 200, await resp.text()
    assert len(hits) == 1
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["sha256"] == sha(elsewhere) != sha(image)
