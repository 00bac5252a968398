"""The official openai Python SDK as the client of the Videos and Images APIs."""

from __future__ import annotations

import asyncio
import base64

import openai
import pytest
from openai import AsyncOpenAI

from sora2api import keys
from sora2api.simulator import mp4_bytes, png

from .conftest import API_KEY, Sim
from .helpers import add_token

# The SDK marks its Sora methods deprecated (OpenAI's own Sora API is being retired); the proxy
# still serves that shape for the SDKs and gateways that speak it.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


@pytest.fixture
async def sdk(client, sim: Sim):
    sim.state.settings.video_seconds = 30
    sim.state.settings.image_seconds = 20
    sim.state.settings.cameo_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    async with AsyncOpenAI(
        base_url=str(client.make_url("/v1")), api_key=API_KEY, max_retries=0
    ) as oai:
        yield oai


async def test_videos_lifecycle(sdk: AsyncOpenAI, client, sim: Sim) -> None:
    video = await sdk.videos.create_and_poll(
        model="sora-2",
        prompt="a cat on a skateboard",
        seconds="10",
        size="1280x720",
        poll_interval_ms=50,
    )
    assert video.status == "completed" and video.progress == 100
    assert (video.seconds, video.size, video.model) == ("10", "1280x720", "sora-2")
    assert video.expires_at and video.completed_at and video.error is None

    content = await sdk.videos.download_content(video.id)
    assert content.content[4:8] == b"ftyp"
    thumb = await sdk.videos.download_content(video.id, variant="thumbnail")
    assert thumb.content.startswith(b"\x89PNG")

    again = await sdk.videos.retrieve(video.id)
    assert again.id == video.id and again.status == "completed"

    remix = await sdk.videos.remix(video.id, prompt="now at night")
    assert remix.remixed_from_video_id == video.id and remix.status == "queued"
    remix = await sdk.videos.poll(remix.id, poll_interval_ms=50)
    assert remix.status == "completed"
    assert (
        sim.state.calls("POST", "/backend/nf/create")[-1].json["remix_target_id"].startswith("s_")
    )

    listed = [v.id async for v in sdk.videos.list(limit=1)]
    assert listed == [remix.id, video.id]  # the SDK follows has_more / after across pages

    deleted = await sdk.videos.delete(video.id)
    assert deleted.deleted is True and deleted.object == "video.deleted" and deleted.id == video.id
    with pytest.raises(openai.NotFoundError):
        await sdk.videos.retrieve(video.id)


async def test_video_with_input_reference_upload(sdk: AsyncOpenAI, sim: Sim) -> None:
    video = await sdk.videos.create_and_poll(
        prompt="bring it to life",
        input_reference=("start.png", png((9, 8, 7)), "image/png"),
        seconds="15",
        size="720x1280",
        poll_interval_ms=50,
    )
    assert video.status == "completed" and (video.seconds, video.size) == ("15", "720x1280")
    (call,) = sim.state.calls("POST", "/backend/nf/create")
    assert call.json["inpaint_items"] and (call.json["orientation"], call.json["n_frames"]) == (
        "portrait",
        450,
    )


async def test_video_bad_requests_raise(sdk: AsyncOpenAI, client, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.videos.create(prompt="x", seconds="4")
    assert '"10", "15"' in info.value.message
    with pytest.raises(openai.BadRequestError, match="Unsupported size"):
        await sdk.videos.create(prompt="x", size="1792x1024")
    with pytest.raises(openai.BadRequestError, match="Unknown model"):
        await sdk.videos.create(prompt="x", model="sora-9")
    with pytest.raises(openai.BadRequestError, match="not a PNG"):
        await sdk.videos.create(prompt="x", input_reference=("a.png", b"plain text", "image/png"))
    assert not sim.state.calls("POST", "/backend/*")
    sim.state.settings.video_seconds = 3000
    slow = await sdk.videos.create(prompt="slow one", seconds="10")
    with pytest.raises(openai.ConflictError, match="not finished"):
        await sdk.videos.download_content(slow.id)
    await sdk.videos.delete(slow.id)
    assert sum(t.busy["video"] for t in client.app[keys.POOL].tokens()) == 0


async def test_character(sdk: AsyncOpenAI, sim: Sim) -> None:
    created = await sdk.videos.create_character(
        name="Kitty", video=("kitty.mp4", mp4_bytes(), "video/mp4")
    )
    assert (
        created.id
        and created.id.startswith("char_")
        and created.name == "Kitty"
        and created.created_at
    )
    async with asyncio.timeout(20):
        while True:
            got = await sdk.videos.get_character(created.id)
            if got.to_dict()["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.05)
    # the SDK's model keeps the fields it does not declare
    extra = got.to_dict()
    assert extra["status"] == "completed" and extra["username"] and extra["character_id"]
    assert got.name == "Kitty"
    (upload,) = sim.state.calls("POST", "/backend/characters/upload")
    assert upload.form["file"]["size"] > 0


async def test_images(sdk: AsyncOpenAI, sim: Sim) -> None:
    urls = await sdk.images.generate(
        model="gpt-image-1", prompt="a lighthouse", size="1024x1024", n=2
    )
    assert urls.data is not None and len(urls.data) == 2
    assert all(d.url and "/tmp/" in d.url for d in urls.data)
    b64 = await sdk.images.generate(
        prompt="a lighthouse", size="1536x1024", response_format="b64_json"
    )
    assert b64.data is not None and base64.b64decode(b64.data[0].b64_json or "").startswith(
        b"\x89PNG"
    )
    assert b64.size == "540x360"
    edited = await sdk.images.edit(
        image=("in.png", png((1, 2, 3)), "image/png"), prompt="make it blue"
    )
    assert edited.data is not None and edited.data[0].url
    edited_list = await sdk.images.edit(
        image=[("in.png", png((1, 2, 3)), "image/png")], prompt="again"
    )
    assert edited_list.data is not None and edited_list.data[0].url
    ops = [c.json["operation"] for c in sim.state.calls("POST", "/backend/video_gen")]
    assert ops == ["simple_compose", "simple_compose", "remix", "remix"]
    with pytest.raises(openai.BadRequestError, match="Unsupported size"):
        await sdk.images.generate(prompt="x", size="256x256")
