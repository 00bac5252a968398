"""The OpenAI Images API over raw HTTP, end to end against the simulator."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp import FormData

from sora2api import keys
from sora2api.simulator import png

from .conftest import KEY, Sim
from .helpers import add_token, chat, data_url


@pytest.fixture
async def ready(client, sim: Sim):
    sim.state.settings.image_seconds = 20
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


async def _download(client, url: str) -> bytes:
    resp = await client.get(url[url.index("/tmp/") :])  # media links need no key
    assert resp.status == 200
    return await resp.read()


async def test_generation_urls(ready, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/images/generations", json={"prompt": "a red fox", "size": "1024x1024"}, headers=KEY
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert isinstance(body["created"], int) and body["size"] == "360x360"
    (item,) = body["data"]
    assert (await _download(ready, item["url"])).startswith(b"\x89PNG")
    (call,) = sim.state.calls("POST", "/backend/video_gen")
    assert (call.json["width"], call.json["height"], call.json["n_variants"]) == (360, 360, 1)
    assert call.json["operation"] == "simple_compose" and call.json["prompt"] == "a red fox"
    row = await ready.app[keys.JOBS].get(body["job_id"])
    assert (row.api, row.model, row.status) == ("images", "sora-image", "completed")


async def test_generation_b64_json_several(ready, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/images/generations",
        json={
            "model": "gpt-image-1",
            "prompt": "cats",
            "n": 3,
            "size": "1536x1024",
            "response_format": "b64_json",
        },
        headers=KEY,
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert len(body["data"]) == 3 and body["size"] == "540x360"
    for item in body["data"]:
        assert "url" not in item
        assert base64.b64decode(item["b64_json"]).startswith(b"\x89PNG")
    (call,) = sim.state.calls("POST", "/backend/video_gen")
    assert (call.json["width"], call.json["height"], call.json["n_variants"]) == (540, 360, 3)
    row = await ready.app[keys.JOBS].get(body["job_id"])
    assert row.model == "gpt-image-1"  # what the client asked for


@pytest.mark.parametrize(
    ("model", "size", "wh"),
    [
        ("sora-image-portrait", None, (360, 540)),
        ("sora-image-landscape", "540x360", (540, 360)),
        ("dall-e-3", "1024x1792", (360, 540)),
        ("gpt-image-1", "auto", (360, 360)),
        (None, "1024x1536", (360, 540)),
        ("sora-image", "360x360", (360, 360)),
    ],
)
async def test_size_mapping(
    ready, sim: Sim, model: str | None, size: str | None, wh: tuple[int, int]
) -> None:
    body: dict[str, Any] = {"prompt": "x"}
    if model:
        body["model"] = model
    if size:
        body["size"] = size
    resp = await ready.post("/v1/images/generations", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["size"] == f"{wh[0]}x{wh[1]}"
    (call,) = sim.state.calls("POST", "/backend/video_gen")
    assert (call.json["width"], call.json["height"]) == wh


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"prompt": "x", "size": "999x999"}, "size", "use one of: 360x360, 1024x1024"),
        (
            {"prompt": "x", "model": "sora-image-portrait", "size": "1024x1024"},
            "size",
            "makes 360x540 images",
        ),
        ({"prompt": "x", "n": 5}, "n", "from 1 to 4"),
        ({"prompt": "x", "n": "two"}, "n", "from 1 to 4"),
        ({"prompt": "x", "model": "midjourney"}, "model", "Unknown model 'midjourney'"),
        ({"prompt": "x", "model": "sora-video-10s"}, "model", "POST /v1/videos"),
        ({"prompt": "x", "response_format": "png"}, "response_format", "url, b64_json"),
        ({"size": "1024x1024"}, "prompt", "'prompt' is required"),
        ({"prompt": "x", "stream": True}, "stream", "not supported"),
    ],
)
async def test_generation_bad_input(
    ready, sim: Sim, body: dict[str, Any], param: str, fragment: str
) -> None:
    resp = await ready.post("/v1/images/generations", json=body, headers=KEY)
    err = (await resp.json())["error"]
    assert resp.status == 400, err
    assert err["param"] == param and fragment in err["message"]
    assert not sim.state.calls("POST", "/backend/*")


async def test_edit_multipart(ready, sim: Sim) -> None:
    form = FormData()
    form.add_field("prompt", "make it blue")
    form.add_field("n", "2")
    form.add_field("size", "1024x1536")
    form.add_field("image", png((1, 2, 3)), filename="in.png", content_type="image/png")
    resp = await ready.post("/v1/images/edits", data=form, headers=KEY)
    body = await resp.json()
    assert resp.status == 200, body
    assert len(body["data"]) == 2 and body["size"] == "360x540"
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["content_type"] == "image/png"
    (call,) = sim.state.calls("POST", "/backend/video_gen")
    assert call.json["operation"] == "remix" and call.json["inpaint_items"][0]["upload_media_id"]


async def test_edit_sdk_array_field_and_json(ready, sim: Sim) -> None:
    form = FormData()
    form.add_field("prompt", "x")
    form.add_field("image[]", png((3, 3, 3)), filename="a.png", content_type="image/png")
    resp = await ready.post("/v1/images/edits", data=form, headers=KEY)
    assert resp.status == 200, await resp.text()
    resp = await ready.post(
        "/v1/images/edits",
        json={
            "prompt": "y",
            "images": [{"image_url": data_url(png((4, 4, 4)), "image/png")}],
            "response_format": "b64_json",
        },
        headers=KEY,
    )
    assert resp.status == 200, await resp.text()
    assert len(sim.state.calls("POST", "/backend/uploads")) == 2


async def test_edit_bad_input(ready, sim: Sim) -> None:
    async def bad(form: FormData) -> dict[str, Any]:
        resp = await ready.post("/v1/images/edits", data=form, headers=KEY)
        body = await resp.json()
        assert resp.status == 400, body
        return body["error"]

    form = FormData()
    form.add_field("prompt", "x")
    form.add_field("image", b"GIF-but-not-really", filename="x.gif", content_type="image/gif")
    assert "not a PNG" in (await bad(form))["message"]
    form = FormData()
    form.add_field("prompt", "x")
    assert (await bad(form))["param"] == "image"
    form = FormData()
    form.add_field("prompt", "x")
    form.add_field("image", png((1, 1, 1)), filename="a.png", content_type="image/png")
    form.add_field("mask", png((0, 0, 0)), filename="m.png", content_type="image/png")
    assert (await bad(form))["param"] == "mask"
    form = FormData()
    form.add_field("prompt", "x")
    form.add_field("image[]", png((1, 1, 1)), filename="a.png", content_type="image/png")
    form.add_field("image[]", png((2, 2, 2)), filename="b.png", content_type="image/png")
    assert "exactly one" in (await bad(form))["message"]
    assert not sim.state.calls("POST", "/backend/*")


async def test_failures(ready, sim: Sim) -> None:
    sim.state.scenario(
        "violation", target="image", message="This content may violate our guardrails"
    )
    resp = await ready.post("/v1/images/generations", json={"prompt": "bad"}, headers=KEY)
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == "content_policy_violation", body
    sim.state.scenario("fail", target="image", message="upstream exploded")
    resp = await ready.post("/v1/images/generations", json={"prompt": "x"}, headers=KEY)
    assert resp.status == 502 and "upstream exploded" in (await resp.json())["error"]["message"]


async def test_no_tokens(client) -> None:
    resp = await client.post("/v1/images/generations", json={"prompt": "x"}, headers=KEY)
    assert resp.status == 503 and "no tokens" in (await resp.json())["error"]["message"].lower()


async def test_get_image_job_from_any_api(ready, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-image-landscape", "from chat"), headers=KEY
    )
    job_id = (await resp.json())["job_id"]
    got = await ready.get(f"/v1/images/{job_id}", headers=KEY)
    body = await got.json()
    assert got.status == 200, body
    assert (body["id"], body["status"], body["progress"], body["size"]) == (
        job_id,
        "completed",
        100,
        "540x360",
    )
    assert body["error"] is None and len(body["data"]) == 1
    assert (await _download(ready, body["data"][0]["url"])).startswith(b"\x89PNG")
    b64 = await (
        await ready.get(f"/v1/images/{job_id}", params={"response_format": "b64_json"}, headers=KEY)
    ).json()
    assert base64.b64decode(b64["data"][0]["b64_json"]).startswith(b"\x89PNG")
    # a video id is not an image
    video = await (await ready.post("/v1/videos", json={"prompt": "x"}, headers=KEY)).json()
    wrong = await ready.get(f"/v1/images/{video['id']}", headers=KEY)
    assert (
        wrong.status == 404
        and f"/v1/videos/{video['id']}" in (await wrong.json())["error"]["message"]
    )
    assert (await ready.get("/v1/images/img_" + "0" * 32, headers=KEY)).status == 404


async def test_expired_image_is_410_in_both_formats(ready, sim: Sim) -> None:
    resp = await ready.post("/v1/images/generations", json={"prompt": "a cat"}, headers=KEY)
    body = await resp.json()
    assert resp.status == 200, body
    job_id, url = body["job_id"], body["data"][0]["url"]
    media = ready.app[keys.JOBS].media
    media.delete(url.rsplit("/", 1)[1])  # what the pruner does after media_ttl
    for fmt in ("url", "b64_json"):
        got = await ready.get(f"/v1/images/{job_id}", params={"response_format": fmt}, headers=KEY)
        err = (await got.json())["error"]
        # never a 200 carrying links that 404
        assert got.status == 410 and err["code"] == "media_expired", (fmt, err)
