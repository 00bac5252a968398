"""What real clients see: the OpenAI SDK on our stream, custom watermark parser, public URLs."""

from __future__ import annotations

import openai
import orjson
import pytest

from .conftest import API_KEY, KEY, Sim
from .helpers import add_token, chat, final_result, read_sse


def _sdk(client) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=API_KEY, max_retries=0)


async def test_openai_sdk_streams_progress_and_result(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    async with _sdk(client) as sdk:
        stream = await sdk.chat.completions.create(
            model="sora-image", messages=[{"role": "user", "content": "a cat"}], stream=True
        )
        contents, reasoning = [], []
        async for chunk in stream:
            delta = chunk.choices[0].delta
            if delta.content:
                contents.append(delta.content)
            extra = getattr(delta, "reasoning_content", None) or (delta.model_extra or {}).get(
                "reasoning_content"
            )
            if extra:
                reasoning.append(extra)
    assert len(contents) == 1
    assert orjson.loads(contents[0])["type"] == "image"
    assert reasoning and all("stage" in r for r in reasoning)


async def test_openai_sdk_raises_on_a_failure_after_the_stream_started(client) -> None:
    async with _sdk(client) as sdk:
        stream = await sdk.chat.completions.create(
            model="sora-image", messages=[{"role": "user", "content": "a cat"}], stream=True
        )
        with pytest.raises(openai.APIError, match="(?i)no tokens"):
            async for _ in stream:
                pass


async def test_openai_sdk_non_stream(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    async with _sdk(client) as sdk:
        done = await sdk.chat.completions.create(
            model="sora-image", messages=[{"role": "user", "content": "x"}]
        )
    assert orjson.loads(done.choices[0].message.content or "")["type"] == "image"


async def test_custom_watermark_parser(make_client, sim: Sim) -> None:
    client = await make_client(
        generation={
            "watermark_free": True,
            "watermark_parse_method": "custom",
            "watermark_custom_url": sim.url,
            "watermark_custom_token": sim.state.settings.custom_parser_token,
        }
    )
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    assert final_result(frames).get("watermark_free") is True
    (parse,) = sim.state.calls("POST", "/get-sora-link")
    assert parse.json["url"].startswith("https://sora.chatgpt.com/p/s_")
    assert parse.json["token"] == sim.state.settings.custom_parser_token
    assert "authorization" not in parse.headers  # the parser never sees a Sora token
    assert len(sim.state.calls("DELETE", "/backend/project_y/post/*")) == 1


async def test_watermark_failure_without_fallback_fails_the_job(make_client, sim: Sim) -> None:
    client = await make_client(
        generation={
            "watermark_free": True,
            "watermark_parse_method": "custom",
            "watermark_custom_url": sim.url,
            "watermark_custom_token": "wrong",
            "watermark_fallback": False,
        }
    )
    sim.state.settings.video_seconds = 30
    await add_token(client, sim.state.add_account())
    resp = await client.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    assert resp.status == 502
    assert "Watermark-free processing failed" in (await resp.json())["error"]["message"]
    # the published post is deleted even when the chain fails
    assert len(sim.state.calls("DELETE", "/backend/project_y/post/*")) == 1


async def test_media_links_use_public_url(make_client, sim: Sim) -> None:
    client = await make_client(server={"public_url": "https://sora.example.com/"})
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    url = orjson.loads((await resp.json())["choices"][0]["message"]["content"])["urls"][0]
    assert url.startswith("https://sora.example.com/tmp/") and url.endswith(".png")
    local = await client.get(url.removeprefix("https://sora.example.com"))
    assert local.status == 200


async def test_media_links_answer_head(client, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    url = orjson.loads((await resp.json())["choices"][0]["message"]["content"])["urls"][0]
    head = await client.head(url[url.index("/tmp/") :])
    assert head.status == 200 and head.headers["Content-Type"] == "image/png"
    assert int(head.headers["Content-Length"]) > 0
