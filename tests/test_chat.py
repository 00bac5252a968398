"""Every seed flow over /v1/chat/completions, end to end against the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web

from sora2api import keys
from sora2api.simulator import mp4_bytes, png

from .conftest import KEY, Sim
from .helpers import add_token, chat, data_url, final_result, read_sse, reasoning

IMAGE_SIZES = {
    "sora-image": (360, 360),
    "sora-image-landscape": (540, 360),
    "sora-image-portrait": (360, 540),
}
VIDEO_MODELS = {
    "sora-video-10s": ("landscape", 300),
    "sora-video-15s": ("landscape", 450),
    "sora-video-landscape-10s": ("landscape", 300),
    "sora-video-landscape-15s": ("landscape", 450),
    "sora-video-portrait-10s": ("portrait", 300),
    "sora-video-portrait-15s": ("portrait", 450),
}


@pytest.fixture
async def ready(client, sim: Sim):
    """The app with one simulator account added as a token."""
    sim.state.settings.image_seconds = 20
    sim.state.settings.video_seconds = 60
    account = sim.state.add_account()
    await add_token(client, account)
    sim.state.clear_journal()
    return client


async def _download(client, url: str) -> bytes:
    assert "/tmp/" in url
    path = url[url.index("/tmp/") :]
    resp = await client.get(path)  # no credentials: media links open anywhere
    assert resp.status == 200
    return await resp.read()


def _busy_total(client) -> int:
    pool = client.app[keys.POOL]
    return sum(t.busy["image"] + t.busy["video"] for t in pool.tokens())


async def test_text_to_image_stream(ready, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-image", "一只可爱的小猫", stream=True), headers=KEY
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["X-Accel-Buffering"] == "no"
    frames, _ = await read_sse(resp)
    first = frames[0]
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in f["choices"][0]["delta"] for f in frames[1:])
    steps = reasoning(frames)
    assert {s["stage"] for s in steps} >= {"generation", "cache"}
    assert all(s["status"] in ("started", "processing", "completed", "error") for s in steps)
    assert all(isinstance(s["timestamp"], int) and s["message"] for s in steps)
    assert any(s["status"] == "processing" and "progress" in s for s in steps)
    # progress never goes backwards
    progress = [s["progress"] for s in steps if s["stage"] == "generation" and "progress" in s]
    assert progress == sorted(progress)
    result = final_result(frames)
    assert result["type"] == "image" and result["count"] == 1
    assert result["data"][0]["url"] == result["urls"][0]
    assert frames[-1]["choices"][0]["finish_reason"] == "stop"
    body = await _download(ready, result["urls"][0])
    assert body.startswith(b"\x89PNG")
    (create,) = sim.state.calls("POST", "/backend/video_gen")
    assert create.json["prompt"] == "一只可爱的小猫"
    assert (create.json["width"], create.json["height"]) == (360, 360)
    assert create.json["operation"] == "simple_compose"
    assert create.headers.get("openai-sentinel-token")
    assert not sim.state.calls("GET", "/backend/v2/recent_tasks")[0].headers.get(
        "openai-sentinel-token"
    )
    assert _busy_total(ready) == 0


@pytest.mark.parametrize("model", list(IMAGE_SIZES))
async def test_image_models_non_stream(ready, sim: Sim, model: str) -> None:
    resp = await ready.post("/v1/chat/completions", json=chat(model, "a red fox"), headers=KEY)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["object"] == "chat.completion"
    content = orjson.loads(body["choices"][0]["message"]["content"])
    assert content["type"] == "image"
    (create,) = sim.state.calls("POST", "/backend/video_gen")
    assert (create.json["width"], create.json["height"]) == IMAGE_SIZES[model]


async def test_image_to_image(ready, sim: Sim) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    body = chat(
        "sora-image",
        [
            {"type": "text", "text": "make it blue"},
            {"type": "image_url", "image_url": {"url": data_url(png((1, 2, 3)), "image/png")}},
        ],
    )
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["content_type"] == "image/png"
    assert upload.form["file_name"]["text"] == "image.png"
    (create,) = sim.state.calls("POST", "/backend/video_gen")
    assert create.json["operation"] == "remix"
    assert create.json["inpaint_items"][0]["type"] == "image"
    assert create.json["inpaint_items"][0]["upload_media_id"]
    assert jpeg  # JPEG inputs are labelled as JPEG (checked in the bad-input test module)


@pytest.mark.parametrize("model", list(VIDEO_MODELS))
async def test_text_to_video_models(ready, sim: Sim, model: str) -> None:
    resp = await ready.post(
        "/v1/chat/completions", json=chat(model, "一只猫在弹钢琴", style_id="Anime"), headers=KEY
    )
    assert resp.status == 200, await resp.text()
    content = orjson.loads((await resp.json())["choices"][0]["message"]["content"])
    assert content["type"] == "video"
    assert content["data"][0]["url"] == content["url"]
    video = await _download(ready, content["url"])
    assert video[4:8] == b"ftyp"
    (create,) = sim.state.calls("POST", "/backend/nf/create")
    orientation, frames = VIDEO_MODELS[model]
    assert create.json["orientation"] == orientation
    assert create.json["n_frames"] == frames
    assert create.json["style_id"] == "anime"
    assert create.json["inpaint_items"] == []
    # quota is read back after the video
    assert sim.state.calls("GET", "/backend/nf/check")


async def test_video_stream_shows_progress_and_keepalive(make_client, sim: Sim) -> None:
    client = await make_client(server={"keepalive_interval": 0.05})
    sim.state.settings.video_seconds = 100
    await add_token(client, sim.state.add_account())
    resp = await client.post(
        "/v1/chat/completions",
        json=chat("sora-video-portrait-10s", "a dog", stream=True),
        headers=KEY,
    )
    frames, comments = await read_sse(resp)
    assert comments and all(c.startswith(": keep-alive") for c in comments)
    steps = reasoning(frames)
    gen = [s for s in steps if s["stage"] == "generation" and s["status"] == "processing"]
    assert gen and max(s["progress"] for s in gen) > 0
    assert final_result(frames)["type"] == "video"


@pytest.fixture
async def image_host(aiohttp_server):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=png((9, 9, 9)), content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", handler)
    return await aiohttp_server(app)


@pytest.mark.parametrize("how", ["data_url", "http_url", "image_field"])
async def test_image_to_video(make_client, sim: Sim, image_host, how: str) -> None:
    client = await make_client(security={"allow_private_urls": True})
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    url = str(image_host.make_url("/cat.png"))
    if how == "data_url":
        body = chat(
            "sora-video-landscape-10s",
            [
                {"type": "text", "text": "让图片动起来"},
                {"type": "image_url", "image_url": {"url": data_url(png((5, 5, 5)), "image/png")}},
            ],
        )
    elif how == "http_url":
        body = chat(
            "sora-video-landscape-10s",
            [
                {"type": "text", "text": "让图片动起来"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        )
    else:
        body = chat(
            "sora-video-landscape-10s", "让图片动起来", image=data_url(png((7, 7, 7)), "image/png")
        )
    resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    (create,) = sim.state.calls("POST", "/backend/nf/create")
    assert create.json["inpaint_items"] == [
        {"kind": "upload", "upload_id": create.json["inpaint_items"][0]["upload_id"]}
    ]
    assert create.json["inpaint_items"][0]["upload_id"].startswith("media_")
    assert upload.form["file"]["size"] > 0


@pytest.mark.parametrize(
    ("prompt", "extra"),
    [
        ("https://sora.chatgpt.com/p/s_68e3a06dcd888191b150971da152c1f5 改成水墨画风格", {}),
        ("s_68e3a06dcd888191b150971da152c1f5 改成水墨画风格", {}),
        ("改成水墨画风格", {"remix_target_id": "s_68e3a06dcd888191b150971da152c1f5"}),
    ],
)
async def test_remix(ready, sim: Sim, prompt: str, extra: dict[str, Any]) -> None:
    resp = await ready.post(
        "/v1/chat/completions",
        json=chat("sora-video-portrait-15s", prompt, stream=True, **extra),
        headers=KEY,
    )
    frames, _ = await read_sse(resp)
    assert any(s["stage"] == "remix" for s in reasoning(frames))
    assert final_result(frames)["type"] == "video"
    (create,) = sim.state.calls("POST", "/backend/nf/create")
    assert create.json["remix_target_id"] == "s_68e3a06dcd888191b150971da152c1f5"
    assert create.json["prompt"] == "改成水墨画风格"
    assert (create.json["orientation"], create.json["n_frames"]) == ("portrait", 450)


async def test_storyboard(ready, sim: Sim) -> None:
    prompt = "Cat adventure\n[5.0s]猫猫从飞机上跳伞\n[5.0s]猫猫降落 [10.0s]猫猫在田野奔跑"
    resp = await ready.post(
        "/v1/chat/completions",
        json=chat("sora-video-landscape-15s", prompt, stream=True, style_id="retro"),
        headers=KEY,
    )
    frames, _ = await read_sse(resp)
    assert any(s["stage"] == "storyboard" for s in reasoning(frames))
    assert final_result(frames)["type"] == "video"
    (create,) = sim.state.calls("POST", "/backend/nf/create/storyboard")
    assert create.json["prompt"] == (
        "current timeline:\nShot 1:\nduration: 5.0sec\nScene: 猫猫从飞机上跳伞\n\n"
        "Shot 2:\nduration: 5.0sec\nScene: 猫猫降落\n\n"
        "Shot 3:\nduration: 10.0sec\nScene: 猫猫在田野奔跑\n\ninstructions:\nCat adventure"
    )
    assert create.json["n_frames"] == 450 and create.json["style_id"] == "retro"
    assert not sim.state.calls("POST", "/backend/nf/create")


async def test_character_creation_only(ready, sim: Sim) -> None:
    sim.state.settings.cameo_seconds = 20
    body = chat(
        "sora-video-landscape-10s",
        [{"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}}],
        stream=True,
        character_options={"display_name": "我的角色", "timestamps": "1,4"},
    )
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    frames, _ = await read_sse(resp)
    result = final_result(frames)
    assert result["type"] == "character"
    assert result["display_name"] == "我的角色"
    assert result["data"]["character_id"] == result["character_id"]
    (upload,) = sim.state.calls("POST", "/backend/characters/upload")
    assert upload.form["timestamps"]["text"] == "1,4"
    (fin,) = sim.state.calls("POST", "/backend/characters/finalize")
    assert fin.json["username"] == result["username"]
    (vis,) = sim.state.calls("POST", "/backend/project_y/cameos/by_id/*/update_v2")
    assert vis.json == {"visibility": "public"}
    assert not sim.state.calls("POST", "/backend/nf/create")
    assert not sim.state.calls("DELETE", "/backend/project_y/characters/*")
    row = await ready.app[keys.STORE].fetchone("SELECT * FROM characters")
    assert row is not None and row["character_id"] == result["character_id"]


async def test_character_with_prompt_generates_and_cleans_up(ready, sim: Sim) -> None:
    sim.state.settings.cameo_seconds = 20
    body = chat(
        "sora-video-portrait-10s",
        [
            {"type": "text", "text": "dancing in the rain"},
            {"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}},
        ],
        stream=True,
        character_options={"username": "kitty_dancer"},
    )
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    frames, _ = await read_sse(resp)
    assert final_result(frames)["type"] == "video"
    (create,) = sim.state.calls("POST", "/backend/nf/create")
    assert create.json["prompt"] == "@kitty_dancer dancing in the rain"
    deletes = sim.state.calls("DELETE", "/backend/project_y/characters/*")
    assert len(deletes) == 1
    # the cleanup step is reported before the result, never after [DONE]
    messages = [s["message"] for s in reasoning(frames)]
    assert any("cleaned up" in m for m in messages)


async def test_watermark_free(make_client, sim: Sim) -> None:
    client = await make_client(generation={"watermark_free": True})
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "a cat", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    result = final_result(frames)
    assert result["type"] == "video" and result.get("watermark_free") is True
    stages = [s["stage"] for s in reasoning(frames)]
    assert "watermark_free" in stages
    (post,) = sim.state.calls("POST", "/backend/project_y/post")
    assert post.headers.get("openai-sentinel-token")
    assert sim.state.calls("GET", "/thirdparty/MP4/*")
    assert len(sim.state.calls("DELETE", "/backend/project_y/post/*")) == 1
    assert (await _download(client, result["url"]))[4:8] == b"ftyp"


async def test_watermark_free_falls_back_and_says_so(make_client, sim: Sim) -> None:
    client = await make_client(generation={"watermark_free": True})
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    sim.state.inject("POST", "/backend/project_y/post", "500")
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "a cat", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    result = final_result(frames)
    assert result["type"] == "video" and "watermark_free" not in result
    assert any(
        s["stage"] == "watermark_free" and s["status"] == "error" and "falling back" in s["message"]
        for s in reasoning(frames)
    )


async def test_content_policy_violation(ready, sim: Sim) -> None:
    sim.state.scenario(
        "violation", target="video", message="This content may violate our guardrails"
    )
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "bad", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    result = final_result(frames)
    assert result["type"] == "error"
    assert "guardrails" in result["error"] and result["data"]["error"] == result["error"]
    assert not any("error" in f for f in frames)  # not an SDK error frame: a README result
    assert any(s["stage"] == "error" for s in reasoning(frames))
    tokens = await (await ready.get("/api/tokens", headers=KEY)).json()
    tok = (tokens.get("tokens") or tokens.get("data") or tokens)[0]
    assert tok["status"] == "active"
    # a violation is neither a success nor an error of the token
    row = await ready.app[keys.STORE].fetchone("SELECT video_count, consecutive_errors FROM tokens")
    assert row == {"video_count": 0, "consecutive_errors": 0}
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1  # never retried


async def test_failure_after_stream_started_ends_with_error_frame(client, sim: Sim) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-image", "a cat", stream=True), headers=KEY
    )
    assert resp.status == 200
    frames, _ = await read_sse(resp)
    err = [f for f in frames if "error" in f]
    assert len(err) == 1 and "no tokens" in err[0]["error"]["message"].lower()
    assert set(err[0]["error"]) == {"message", "type", "param", "code"}
    readable = [f for f in frames if "choices" in f and f["choices"][0]["finish_reason"]]
    assert "Generation failed" in readable[0]["choices"][0]["delta"]["content"]


async def test_no_tokens_non_stream_is_503_with_reason(client) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    assert resp.status == 503
    body = await resp.json()
    assert "no tokens" in body["error"]["message"].lower()


async def test_image_task_failure_is_reported_at_once(ready, sim: Sim) -> None:
    sim.state.scenario("fail", target="image", message="upstream exploded")
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    assert resp.status == 502
    assert "upstream exploded" in (await resp.json())["error"]["message"]


async def test_markdown_format(make_client, sim: Sim) -> None:
    client = await make_client(generation={"content_format": "markdown"})
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    content = (await resp.json())["choices"][0]["message"]["content"]
    assert content.startswith("![Generated Image](http://") and "/tmp/" in content


async def test_client_disconnect_does_not_kill_the_job(ready, sim: Sim) -> None:
    sim.state.settings.video_seconds = 60
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    first = await resp.content.readline()
    assert first.startswith(b"data: ")
    job_id = orjson.loads(first[6:])["job_id"]
    resp.close()
    engine = ready.app[keys.JOBS]
    run = engine.run_of(job_id)
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 30)
    row = await engine.get(job_id)
    assert row.status == "completed"
    assert _busy_total(ready) == 0


async def test_429_on_one_token_moves_the_job_and_cools_it(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    a, b = sim.state.add_account(), sim.state.add_account()
    id_a = await add_token(client, a)
    await add_token(client, b)
    sim.state.inject("POST", "/backend/video_gen", "429", email=a.email, times=None)
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
        assert resp.status == 200, await resp.text()
    rows = {r["id"]: r for r in await client.app[keys.STORE].fetchall("SELECT * FROM tokens")}
    assert rows[id_a]["status"] == "active" and rows[id_a]["cooldown_until"]
    assert all(r["status"] == "active" for r in rows.values())
    assert sum(r["image_count"] for r in rows.values()) == 2


async def test_every_token_cooling_is_named_in_the_error(client, sim: Sim) -> None:
    for _ in range(2):
        acct = sim.state.add_account()
        await add_token(client, acct)
        sim.state.inject("POST", "/backend/video_gen", "429", email=acct.email)
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    body = await resp.json()
    assert resp.status == 503, body
    assert "2 cooling down until" in body["error"]["message"]
