"""The simulator's media as a demo user meets them: videos that play in Chromium with the length
and orientation the model promises, and pictures that tell one request from another.

The browser is the judge of "playable": Debian's Chromium loads the file into a <video> element.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer, unused_port

from sora2api.app import create_app
from sora2api.simulator import SIM_STATE, create_simulator
from sora2api.simulator.media import (
    Mp4,
    mp4_bytes,
    pattern_png,
    sniff_image,
    sniff_video,
    video_shape,
)
from sora2api.simulator.providers import PROVIDER_STATE

from .conftest import KEY, Sim, config_for
from .helpers import add_token, chat

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"
WAIT_MS = 20000  # one UI expectation on a loaded machine; the simulator runs at 1/100 speed

needs_browser = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is missing (`make test` installs it)"
)


# -- the files themselves ----------------------------------------------------------------------


def boxes(data: bytes) -> dict[str, bytes]:
    """Top-level ISO-BMFF boxes by type (payload only), failing on a length that overruns."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        assert size >= 8 and pos + size <= len(data), f"bad box {kind!r} at {pos}"
        out[kind.decode()] = data[pos + 8 : pos + size]
        pos += size
    return out


def track_facts(data: bytes) -> tuple[float, int, int, int]:
    """(seconds, width, height, sample count) read from the moov of an MP4."""
    trak = boxes(boxes(data)["moov"])["trak"]
    tkhd = boxes(trak)["tkhd"]
    width, height = (v >> 16 for v in struct.unpack(">II", tkhd[-8:]))
    mdia = boxes(trak)["mdia"]
    _, _, timescale, duration = struct.unpack(">IIII", boxes(mdia)["mdhd"][4:20])
    stsz = boxes(boxes(boxes(mdia)["minf"])["stbl"])["stsz"]
    return duration / timescale, width, height, struct.unpack(">I", stsz[8:12])[0]


def png_facts(data: bytes) -> tuple[int, int, tuple[int, int, int]]:
    """(width, height, top-left RGB) of one of our PNGs (8-bit RGB, filter 0)."""
    assert sniff_image(data) == "image/png"
    width, height = struct.unpack(">II", data[16:24])
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_len])
    assert raw[0] == 0
    return width, height, (raw[1], raw[2], raw[3])


@pytest.mark.parametrize(
    ("width", "height", "ms", "shape"),
    [(1280, 720, 10_000, (160, 90)), (720, 1280, 15_000, (90, 160)), (0, 0, 5_000, (160, 90))],
)
def test_mp4_has_one_h264_track_of_the_promised_shape(
    width: int, height: int, ms: int, shape: tuple[int, int]
) -> None:
    data = Mp4(size=0, seed="gen_a/dl.mp4", duration_ms=ms, width=width, height=height).to_bytes()
    assert sniff_video(data) == "video/mp4" and list(boxes(data)) == [
        "ftyp",
        "moov",
        "free",
        "mdat",
    ]
    seconds, w, h, frames = track_facts(data)
    assert (seconds, (w, h), frames) == (ms / 1000, shape, ms // 500)
    assert b"avcC" in boxes(data)["moov"]


def test_a_requested_size_pads_the_mdat_and_keeps_the_picture() -> None:
    small = Mp4(size=0, seed="gen_b/dl.mp4").to_bytes()
    big = Mp4(size=200_000, seed="gen_b/dl.mp4")
    data = big.to_bytes()
    assert big.total == len(data) == 200_000
    assert boxes(data)["moov"] == boxes(small)["moov"]
    assert boxes(data)["mdat"].startswith(boxes(small)["mdat"])
    # Any byte range is the same slice of the file, however it is chunked.
    assert b"".join(big.iter_range(1000, 150_000, 7777)) == data[1000:150_000]
    # mp4_bytes keeps its signature: a playable 10 s file, or one of a given size.
    assert track_facts(mp4_bytes())[0] == 10 and len(mp4_bytes(size=100_000)) == 100_000


def test_variants_share_the_picture_but_not_the_bytes() -> None:
    wm = Mp4(size=0, seed="gen_c/wm.mp4").to_bytes()
    clean = Mp4(size=0, seed="gen_c/dl.mp4").to_bytes()
    other = Mp4(size=0, seed="gen_d/dl.mp4").to_bytes()
    assert wm != clean and boxes(wm)["mdat"] == boxes(clean)["mdat"] != boxes(other)["mdat"]


def test_pictures_tell_keys_apart_and_follow_the_orientation() -> None:
    first, second = pattern_png("gen_1", 1280, 720), pattern_png("gen_2", 1280, 720)
    (w1, h1, rgb1), (w2, h2, rgb2) = png_facts(first), png_facts(second)
    assert (w1, h1) == (w2, h2) == (160, 90) and rgb1 != rgb2
    assert png_facts(pattern_png("gen_1", 360, 540))[:2] == (106, 160)
    assert png_facts(pattern_png("avatar"))[:2] == (160, 160)


# -- through the proxy and in the browser ------------------------------------------------------


@pytest.fixture
async def app_url(
    sim: Sim,
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> tuple[str, TestClient]:
    """The app on a real port (its /tmp links must name the port the browser reaches), one token."""
    port = unused_port()
    url = f"http://127.0.0.1:{port}"
    config = config_for(sim, tmp_path, server={"public_url": url, "keepalive_interval": 15.0})
    client = await aiohttp_client(await aiohttp_server(create_app(config), port=port))
    sim.state.settings.video_seconds = 60
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return url, client


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        try:
            yield await context.new_page()
        finally:
            await browser.close()


async def played(page: Any, selector: str) -> dict[str, float]:
    """Wait until the <video> has a decoded frame (readyState >= 2), then read what it plays."""
    await page.wait_for_function(
        """(selector) => {
            const v = document.querySelector(selector);
            if (v && v.error) throw new Error("MediaError " + v.error.code);
            return v && v.readyState >= 2;
        }""",
        arg=selector,
    )
    return dict(
        await page.evaluate(
            """(selector) => {
                const v = document.querySelector(selector);
                return {duration: v.duration, width: v.videoWidth, height: v.videoHeight};
            }""",
            selector,
        )
    )


async def result_url(client: TestClient, model: str, prompt: str) -> str:
    resp = await client.post("/v1/chat/completions", json=chat(model, prompt), headers=KEY)
    assert resp.status == 200, await resp.text()
    content = (await resp.json())["choices"][0]["message"]["content"]
    found = re.search(r"https?://[^\s'\"()<>]+/tmp/[^\s'\"()<>]+", content)
    assert found, content
    return found.group(0)


@needs_browser
async def test_playground_video_plays_ten_landscape_seconds(
    app_url: tuple[str, TestClient], sim: Sim, page: Any
) -> None:
    url, client = app_url
    resp = await client.post("/api/login", json={"username": "admin", "password": "admin"})
    token = (await resp.json())["token"]
    resp = await client.post(
        "/api/admin/password",
        json={"old_password": "admin", "new_password": PASSWORD},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200, await resp.text()
    await page.goto(url + "/login")
    await page.fill("#login-form input[name=username]", "admin")
    await page.fill("#login-form input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator("#page-tokens").wait_for()
    await page.click("#nav a[data-page=playground]")
    await page.click("#use-server-key")
    await page.locator("#pg-model option[value=sora-video-10s]").wait_for(state="attached")
    await page.select_option("#pg-model", "sora-video-10s")
    await page.fill("#pg-prompt", "waves at dusk")
    await page.click("#pg-send")
    await page.locator("#pg-result video.result-video").wait_for()

    seen = await played(page, "#pg-result video.result-video")
    assert abs(seen["duration"] - 10) <= 1 and seen["width"] > seen["height"], seen
    [create] = sim.state.calls("POST", "/backend/nf/create")
    assert create.json is not None
    assert (create.json["n_frames"], create.json["orientation"]) == (300, "landscape")


@needs_browser
async def test_proxied_link_plays_fifteen_portrait_seconds(
    app_url: tuple[str, TestClient], sim: Sim, page: Any
) -> None:
    url, client = app_url
    link = await result_url(client, "sora-video-portrait-15s", "a lighthouse, vertical")
    assert link.startswith(url + "/tmp/")
    # Chromium shows a media URL in its own page around a single <video> element.
    await page.goto(link)
    seen = await played(page, "video")
    assert abs(seen["duration"] - 15) <= 1 and seen["width"] < seen["height"], seen
    [create] = sim.state.calls("POST", "/backend/nf/create")
    assert create.json is not None
    assert (create.json["n_frames"], create.json["orientation"]) == (450, "portrait")

    # A video padded to a large size by a scenario still plays from the simulator itself.
    sim.state.settings.video_bytes = 3_000_000
    link = await result_url(client, "sora-video-landscape-10s", "a big file")
    await page.goto(link)
    seen = await played(page, "video")
    assert abs(seen["duration"] - 10) <= 1 and seen["width"] > seen["height"], seen
    resp = await client.get(link.removeprefix(url), headers={"Range": "bytes=0-99"})
    assert resp.status == 206 and resp.headers["Content-Range"] == "bytes 0-99/3000000"


async def test_two_image_requests_get_different_pictures(
    app_url: tuple[str, TestClient], sim: Sim
) -> None:
    _, client = app_url
    pictures = []
    for prompt in ("a red fox", "a blue whale"):
        link = await result_url(client, "sora-image-portrait", prompt)
        resp = await client.get(link[link.index("/tmp/") :])
        assert resp.status == 200 and resp.content_type == "image/png"
        pictures.append(png_facts(await resp.read()))
    (w1, h1, rgb1), (w2, h2, rgb2) = pictures
    assert h1 > w1 and (w1, h1) == (w2, h2) and rgb1 != rgb2
    assert [c.json["height"] for c in sim.state.calls("POST", "/backend/video_gen")] == [540, 540]


@pytest.mark.parametrize(
    ("params", "shape"),
    [
        ({"seconds": "8", "size": "720x1280"}, (8000, 720, 1280)),
        ({"duration": 12, "ratio": "21:9"}, (12000, 21, 9)),
        ({"duration": -1, "ratio": "adaptive"}, (5000, 16, 9)),
        ({"response_format": {"duration": "6", "aspect_ratio": "9:16"}}, (6000, 9, 16)),
        ({}, (5000, 16, 9)),
    ],
)
def test_live_provider_parameters_give_the_video_its_shape(
    params: dict[str, Any], shape: tuple[int, int, int]
) -> None:
    got = video_shape(params)
    assert (got["duration_ms"], got["width"], got["height"]) == shape


async def test_gateway_video_has_the_requested_length_and_orientation(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    app = create_simulator(time_scale=0.01)
    key = app[PROVIDER_STATE].add_account("openai").key
    client = await aiohttp_client(app)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "sora-2", "prompt": "a tall tower", "seconds": "8", "size": "720x1280"}
    resp = await client.post("/v1/videos", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    video_id = (await resp.json())["id"]
    app[SIM_STATE].advance(3600)
    resp = await client.get(f"/v1/videos/{video_id}/content", headers=headers)
    assert resp.status == 200 and resp.content_type == "video/mp4"
    seconds, width, height, _ = track_facts(await resp.read())
    assert seconds == 8 and width < height
    resp = await client.get(f"/v1/videos/{video_id}/content?variant=thumbnail", headers=headers)
    assert png_facts(await resp.read())[:2] == (90, 160)
