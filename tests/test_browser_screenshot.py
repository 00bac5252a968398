"""The README's screenshot (fixtures from test_browser.py): a panel with a realistic state, seeded
through the HTTP API against the simulator, shown on its Jobs page at 1280x800 and saved to
docs/panel.png, which the repository keeps."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from sora2api.simulator.providers import PROVIDER_STATE

from . import test_browser as shared
from .conftest import KEY
from .helpers import add_token, chat, read_sse
from .test_browser import WAIT_MS, Panel, needs_browser, ui_login

browser, panel, make_panel = shared.browser, shared.panel, shared.make_panel

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "panel.png"
VIEWPORT = {"width": 1280, "height": 800}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def add_provider(panel: Panel, provider: str, name: str, suffix: str) -> None:
    """A live provider's account, added the way the panel's Add dialog does."""
    account = panel.sim.server.app[PROVIDER_STATE].add_account(provider, name=name)
    resp = await panel.api.post(
        "/api/tokens",
        json={"provider": provider, "token": account.key, "base_url": panel.sim.url + suffix},
        headers=await panel.admin_headers(),
    )
    assert resp.status in (200, 201), await resp.text()


async def generate(panel: Panel, model: str, prompt: str) -> list[Any]:
    resp = await panel.api.post(
        "/v1/chat/completions", json=chat(model, prompt, stream=True), headers=KEY
    )
    assert resp.status == 200, await resp.text()
    frames, _ = await read_sse(resp)
    return frames


async def stream_forever(url: str) -> None:
    """A video the simulator never finishes: the running row, with its progress."""
    async with (
        ClientSession() as s,
        s.post(
            url + "/v1/chat/completions",
            json=chat(
                "sora-video-portrait-10s", "waves breaking at dusk, slow motion", stream=True
            ),
            headers=KEY,
        ) as resp,
    ):
        assert resp.status == 200
        await resp.read()


@needs_browser
async def test_panel_screenshot_for_the_readme(panel: Panel, browser: Any) -> None:
    sim = panel.sim.state
    await panel.change_default_password()
    await add_token(panel.api, sim.add_account())
    await add_token(panel.api, sim.add_account())
    await add_provider(panel, "openai", "gateway", "/v1")
    await add_provider(panel, "seedance", "ark", "/api/v3")

    sim.settings.video_seconds = 60  # well under a second at the test time scale
    done = await generate(panel, "sora-video-landscape-10s", "a cat playing the piano, anime")
    assert "video" in str(done[-1])
    resp = await panel.api.session.post(
        panel.sim.url + "/_sim/scenario", json={"outcome": "violation", "target": "video"}
    )
    assert resp.status == 201, await resp.text()
    failed = await generate(panel, "sora-video-landscape-10s", "a crowded stadium, with logos")
    assert any("error" in str(f) for f in failed)

    for model, prompt in (
        ("sora-2", "a lighthouse in a storm, drone shot"),
        ("doubao-seedance-2-5-260628", "a paper boat on a river, macro"),
    ):
        frames = await generate(panel, model, prompt)
        assert "video" in str(frames[-1]), frames[-1]
    # The next video runs for ~20 s: long enough to be caught half-way, short enough to end.
    sim.settings.video_seconds = 2000.0
    task = asyncio.create_task(stream_forever(panel.url))
    headers = await panel.admin_headers()

    async def running() -> Any:
        resp = await panel.api.get("/api/jobs?status=in_progress", headers=headers)
        jobs = (await resp.json())["jobs"]
        return jobs if jobs and (jobs[0]["progress"] or 0) >= 5 else None

    try:
        await wait_until(running, "the running video")
        context = await browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(WAIT_MS)
        try:
            page = await context.new_page()
            await ui_login(page, panel.url)
            await page.locator("#page-tokens").wait_for()
            await page.click("#nav a[data-page=jobs]")
            rows = page.locator("#job-rows tr[data-job-id]")
            await rows.nth(4).wait_for()
            assert await rows.count() == 5
            await rows.first.locator(".badge", has_text="in progress").wait_for()
            SCREENSHOT.parent.mkdir(exist_ok=True)
            SCREENSHOT.unlink(missing_ok=True)
            await page.screenshot(path=str(SCREENSHOT))
        finally:
            await context.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    data = SCREENSHOT.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (VIEWPORT["width"], VIEWPORT["height"])
