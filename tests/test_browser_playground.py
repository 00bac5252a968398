"""The Playground offers what the API offers (fixtures from test_browser.py): every listed model,
a provider's among them; the seconds and sizes the picked model allows; an image sent with the
request; a remix of the finished video; the storyboard helper's prompt format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sora2api.simulator import mp4_bytes, png
from sora2api.simulator.providers import PROVIDER_STATE

from . import test_browser as shared
from .helpers import add_token
from .test_browser import Panel, needs_browser, ui_login

browser, page, panel, make_panel = shared.browser, shared.page, shared.panel, shared.make_panel


async def options(page: Any, selector: str) -> list[str]:
    return await page.eval_on_selector_all(f"{selector} option", "(els) => els.map((e) => e.value)")


@needs_browser
async def test_playground_choices_image_to_video_and_remix(
    panel: Panel, page: Any, tmp_path: Path
) -> None:
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account())
    gateway = panel.sim.server.app[PROVIDER_STATE].add_account("openai", name="gw-play")
    resp = await panel.api.post(
        "/api/tokens",
        json={"provider": "openai", "token": gateway.key, "base_url": panel.sim.url + "/v1"},
        headers=await panel.admin_headers(),
    )
    assert resp.status in (200, 201), await resp.text()

    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.click("#nav a[data-page=playground]")
    await page.click("#use-server-key")
    await page.locator("#pg-model option[value='sora-2']").wait_for(state="attached")
    listed = await options(page, "#pg-model")
    assert "sora-image" in listed and "sora-video-portrait-15s" in listed
    assert {"sora-2", "veo-3.1-fast"} <= set(listed)
    assert "openai" in await page.locator("#pg-model option[value='sora-2']").inner_text()

    # A Sora id fixes its length: nothing to choose; it takes a style, a clip and a storyboard.
    await page.select_option("#pg-model", "sora-video-10s")
    assert not await page.locator("#pg-seconds").is_visible()
    assert not await page.locator("#pg-size").is_visible()
    assert await page.locator("#pg-style").is_visible()
    assert await page.locator("#pg-clip").is_visible()
    assert "10 s" in await page.locator("#pg-model-info").inner_text()
    # The gateway's models offer their own seconds and sizes, and no Sora-only extras.
    await page.select_option("#pg-model", "sora-2")
    assert await options(page, "#pg-seconds") == ["4", "8", "12"]
    assert "720x1280" in await options(page, "#pg-size")
    assert not await page.locator("#pg-style").is_visible()
    assert not await page.locator("#pg-clip").is_visible()
    await page.select_option("#pg-model", "veo-3.1-fast")
    assert await options(page, "#pg-seconds") == ["4", "6", "8"]
    assert "1920x1080" in await options(page, "#pg-size")

    # The storyboard helper writes the seed's shot format into the prompt.
    await page.select_option("#pg-model", "sora-video-10s")
    await page.click("#pg-storyboard summary")
    shots = page.locator("#pg-storyboard .shot")
    await shots.nth(0).locator("select").select_option("5")
    await shots.nth(0).locator("input").fill("a cat wakes up")
    await shots.nth(1).locator("input").fill("it jumps on the piano")
    await page.click("#pg-storyboard-use")
    assert (
        await page.input_value("#pg-prompt") == "[5.0s]a cat wakes up\n[10.0s]it jumps on the piano"
    )

    # Image to video on the gateway, with a chosen length and shape.
    image = png((10, 200, 10))
    await page.select_option("#pg-model", "sora-2")
    await page.select_option("#pg-seconds", "8")
    await page.select_option("#pg-size", "720x1280")
    await page.fill("#pg-prompt", "the leaf starts to fall")
    await page.set_input_files(
        "#pg-image", files=[{"name": "leaf.png", "mimeType": "image/png", "buffer": image}]
    )
    await page.click("#pg-send")
    await page.locator("#pg-result video.result-video").wait_for()
    assert await page.locator("#pg-status").inner_text() == "Done"
    [sent] = panel.sim.state.calls("POST", "/v1/videos")
    assert sent.form["prompt"]["text"] == "the leaf starts to fall"
    assert sent.form["input_reference"]["size"] == len(image)
    assert sent.form["seconds"]["text"] == "8" and sent.form["size"]["text"] == "720x1280"
    source_job = await page.locator("#pg-job").inner_text()

    # Remix the finished video: a new job from it, followed to its own player.
    await page.fill("#pg-remix-prompt", "at night")
    await page.click("#pg-remix-send")
    remixed = page.locator("#pg-remix-result video.result-video")
    await remixed.wait_for()
    assert await page.locator("#pg-remix-status").inner_text() == "Done"
    [remix] = [c for c in panel.sim.state.calls("POST", "/v1/videos/*/remix")]
    assert remix.json == {"prompt": "at night"}
    jobs = (await (await panel.api.get("/api/jobs", headers=await panel.admin_headers())).json())[
        "jobs"
    ]
    assert any(j["remixed_from"] == source_job for j in jobs)
    src = await remixed.get_attribute("src")
    assert src.startswith(panel.url + "/tmp/")
    await page.screenshot(path=str(tmp_path / "playground-remix.png"), full_page=True)

    # A character from a clip: the video alone, no prompt.
    panel.sim.state.settings.cameo_seconds = 2
    await page.select_option("#pg-model", "sora-video-10s")
    await page.fill("#pg-prompt", "")
    await page.set_input_files("#pg-image", files=[])
    clip = mp4_bytes()
    await page.set_input_files(
        "#pg-clip", files=[{"name": "me.mp4", "mimeType": "video/mp4", "buffer": clip}]
    )
    await page.click("#pg-send")
    await page.locator("#pg-result", has_text="Character created").wait_for()
    [upload] = panel.sim.state.calls("POST", "/backend/characters/upload")
    assert upload.form["file"]["size"] == len(clip)
