"""The Keys and Usage pages in a real browser (fixtures from test_browser.py): create a key and
read it once, use it, and see its usage drawn as an SVG chart."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from . import test_browser as shared
from .helpers import add_token, chat
from .test_browser import Panel, needs_browser, ui_login

# pytest finds fixtures by name in the module: the browser tests' own, shared.
browser, page, panel, make_panel = shared.browser, shared.page, shared.panel, shared.make_panel


@needs_browser
async def test_create_a_key_use_it_and_see_its_usage_chart(
    panel: Panel, page: Any, tmp_path: Path
) -> None:
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account())
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.click("#nav a[data-page=keys]")
    await page.locator("#key-rows", has_text="No API keys yet").wait_for()
    await page.click("#create-key")
    form = page.locator("#create-key-form")
    await form.locator("input[name=name]").fill("chat-ui")
    await form.locator("input[name=images_per_day]").fill("5")
    await form.locator("select[name=content_format]").select_option("markdown")
    await form.locator("button[type=submit]").click()
    key = await page.locator("#new-key").input_value()
    secret = await page.locator("#new-webhook-secret").input_value()
    assert key.startswith("sk-s2a-") and secret.startswith("whsec_")
    await page.screenshot(path=str(tmp_path / "key-created.png"))
    await page.keyboard.press("Escape")
    row = page.locator("#key-rows tr", has_text="chat-ui")
    await row.get_by_text("images_per_day 5").wait_for()
    assert key[-4:] in await row.inner_text() and key[:-4] not in await page.content()

    # the key works, with its own content format
    headers = {"Authorization": f"Bearer {key}"}
    resp = await panel.api.post(
        "/v1/chat/completions", json=chat("sora-image", "a cat"), headers=headers
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["choices"][0]["message"]["content"].startswith("![")

    await page.click("#nav a[data-page=usage]")
    await page.locator("#usage-key option", has_text="chat-ui").wait_for(state="attached")
    await page.locator("#usage-key").select_option(label=f"chat-ui (…{key[-4:]})")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    bar = page.locator(f"#usage-chart svg rect.bar-images[data-day='{today}']")
    await bar.wait_for(state="attached")
    await page.locator("#usage-rows tr", has_text="completed").wait_for()
    async with asyncio.timeout(15):
        while float(await bar.get_attribute("height") or 0) <= 0:
            await page.wait_for_timeout(50)
    assert "1" in await page.locator("#usage-rows tr", has_text="completed").inner_text()
    await page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)

    # disable, then delete it from the list
    await page.click("#nav a[data-page=keys]")
    row = page.locator("#key-rows tr", has_text="chat-ui")
    await row.get_by_role("button", name="Disable").click()
    await row.locator(".badge", has_text="disabled").wait_for()
    assert (await panel.api.get("/v1/models", headers=headers)).status == 401
    await row.get_by_role("button", name="Delete").click()
    await page.locator("dialog.confirm").get_by_role("button", name="Delete").click()
    await row.wait_for(state="detached")
