"""The panel's tables at a laptop's and a phone's width (fixtures from test_browser.py): every
action button and every status, error and progress cell lies inside the window without scrolling
sideways; one time format and one key mask; a new tab with the session cookie stays logged in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession

from sora2api.simulator import mp4_bytes
from sora2api.simulator.providers import PROVIDER_STATE

from . import test_browser as shared
from .conftest import KEY
from .helpers import add_token, chat, data_url, read_sse
from .test_browser import WAIT_MS, Panel, needs_browser, ui_login

browser, page, panel, make_panel = shared.browser, shared.page, shared.panel, shared.make_panel

WIDTHS = [
    pytest.param({"width": 1280, "height": 800}, id="laptop"),
    pytest.param({"width": 390, "height": 844}, id="phone"),
]
# What must never hide off-screen: every action, and every status, error and progress cell.
WATCHED = (
    "#view table button, #view table td.status, #view table td.error-cell, "
    "#view table td.progress, #view table td.actions-cell"
)
PAGES = {
    "tokens": "#token-rows tr[data-token-id]",
    "jobs": "#job-rows tr[data-job-id]",
    "logs": "#log-rows tr:not(.empty)",
    "characters": "#character-rows tr:not(.empty)",
    "keys": "#key-rows tr[data-key-id]",
    "usage": "#usage-rows tr",
}


async def wait_until(check: Any, what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def seed(panel: Panel) -> dict[str, Any]:
    """Tokens (one expired by a failed job, one running a video, a provider account), a
    character, an API key, and the request log they leave."""
    sim = panel.sim.state
    headers = await panel.admin_headers()
    sim.settings.video_seconds = 300  # 3 s at the test time scale
    doomed = sim.add_account()
    await add_token(panel.api, doomed)
    sim.inject(
        "GET", "/backend/nf/pending*", "401_expired", email=doomed.email, after=1, times=None
    )
    resp = await panel.api.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "doomed", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    assert any("error" in f for f in frames)

    good = sim.add_account()
    await add_token(panel.api, good)
    sim.settings.cameo_seconds = 2
    clip = [{"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}}]
    resp = await panel.api.post(
        "/v1/chat/completions", json=chat("sora-video-10s", clip, stream=True), headers=KEY
    )
    await read_sse(resp)

    gateway = panel.sim.server.app[PROVIDER_STATE].add_account("openai", name="gw-layout")
    resp = await panel.api.post(
        "/api/tokens",
        json={"provider": "openai", "token": gateway.key, "base_url": panel.sim.url + "/v1"},
        headers=headers,
    )
    assert resp.status in (200, 201), await resp.text()
    resp = await panel.api.post(
        "/api/admin/keys", json={"name": "layout-key", "limits": {"rpm": 10}}, headers=headers
    )
    assert resp.status in (200, 201), await resp.text()
    sim.settings.video_seconds = 100000.0  # the next video never ends by itself
    return {"headers": headers, "doomed": doomed, "good": good}


async def stream_forever(url: str) -> None:
    async with (
        ClientSession() as s,
        s.post(
            url + "/v1/chat/completions",
            json=chat("sora-video-10s", "waves at dusk", stream=True),
            headers=KEY,
        ) as resp,
    ):
        assert resp.status == 200
        await resp.read()


@pytest.fixture
async def seeded(panel: Panel) -> AsyncIterator[dict[str, Any]]:
    await panel.change_default_password()
    data = await seed(panel)
    task = asyncio.create_task(stream_forever(panel.url))

    async def running() -> Any:
        resp = await panel.api.get("/api/jobs?status=in_progress", headers=data["headers"])
        jobs = (await resp.json())["jobs"]
        return jobs if jobs and jobs[0]["stage"] else None

    data["running"] = (await wait_until(running, "the running video"))[0]["id"]
    try:
        yield data
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def offenders(page: Any) -> dict[str, Any]:
    """What sticks out of the window: the page's own width, and each watched box outside it."""
    return await page.evaluate(
        """(selector) => {
          const width = window.innerWidth;
          const out = [];
          for (const el of document.querySelectorAll(selector)) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.left < 0 || r.right > width + 0.5) {
              out.push(`${el.tagName}.${el.className} "${el.textContent.slice(0, 40)}" ${r.left}..${r.right}`);
            }
          }
          return {
            scroll: document.scrollingElement.scrollWidth,
            width,
            watched: document.querySelectorAll(selector).length,
            out,
          };
        }""",
        WATCHED,
    )


@needs_browser
@pytest.mark.parametrize("viewport", WIDTHS)
async def test_every_action_status_error_and_progress_is_inside_the_window(
    panel: Panel, seeded: dict[str, Any], browser: Any, viewport: dict[str, int], tmp_path: Any
) -> None:
    phone = viewport["width"] < 500
    context = await browser.new_context(
        viewport=viewport, is_mobile=phone, has_touch=phone, device_scale_factor=2 if phone else 1
    )
    try:
        context.set_default_timeout(WAIT_MS)
        pg = await context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        await ui_login(pg, panel.url)
        await pg.locator("#page-tokens").wait_for()
        for name, rows in PAGES.items():
            await pg.goto(f"{panel.url}/#/{name}")
            await pg.locator(rows).first.wait_for()
            if name == "tokens":
                await pg.locator("#token-rows tr[data-provider=openai]").wait_for()
                expired = pg.locator("#token-rows tr", has_text=seeded["doomed"].email)
                await expired.locator(".badge", has_text="expired").wait_for()
                cell = await expired.locator("td.status").inner_text()
                # The expiry reason is printed once (not also as the last error), and no
                # "video: expired" line repeats the badge.
                assert cell.count("token has expired") == 1, cell
                assert "video: expired" not in cell, cell
            if name == "jobs":
                row = pg.locator(f'#job-rows tr[data-job-id="{seeded["running"]}"]')
                await row.get_by_role("button", name="Cancel").wait_for()
                await pg.locator("#job-rows tr[data-status=failed] td.job-error").wait_for()
            if name == "logs":
                await pg.locator("#log-rows .log-job-error").first.wait_for()
                await pg.locator("#log-rows .log-job-status").first.wait_for()
            seen = await offenders(pg)
            assert seen["watched"] > 0, name
            assert seen["scroll"] <= seen["width"], (name, seen)
            assert not seen["out"], (name, seen["out"])
            await pg.screenshot(
                path=str(tmp_path / f"{name}-{viewport['width']}.png"), full_page=True
            )
        # The time column of Logs keeps each time on one line.
        await pg.goto(f"{panel.url}/#/logs")
        when = pg.locator("#log-rows td.time time").first
        await when.wait_for()
        box = await when.bounding_box()
        line = await when.evaluate("(el) => parseFloat(getComputedStyle(el).lineHeight) || 20")
        assert box["height"] < 1.6 * line, box
        assert await when.get_attribute("title")  # the absolute time on hover
        assert not errors, errors
    finally:
        await context.close()


@needs_browser
async def test_short_ids_open_whole_and_times_and_masks_are_one_format(
    panel: Panel, seeded: dict[str, Any], page: Any
) -> None:
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.goto(panel.url + "/#/jobs")
    job_id = seeded["running"]
    chip = page.locator(f'#job-rows tr[data-job-id="{job_id}"] .id-chip')
    assert await chip.inner_text() == job_id[:8] + "…"
    assert job_id in (await chip.get_attribute("title") or "")
    await chip.click()
    await page.wait_for_function(
        "(id) => [...document.querySelectorAll('.id-chip.open')].some((e) => e.textContent === id)",
        arg=job_id,
    )
    # Every time shown is relative, with the absolute time as its title.
    times = await page.evaluate(
        "() => [...document.querySelectorAll('#view time.when')].map((t) => [t.textContent, t.title])"
    )
    assert times and all(
        ("ago" in text or text.startswith("in ") or text == "just now") and title
        for text, title in times
    ), times
    # One mask, the server's: the Playground's hint equals what Settings and the logs show.
    full = KEY["Authorization"].removeprefix("Bearer ")
    out = await page.evaluate("async (k) => (await import('/static/dom.js')).maskKey(k)", full)
    assert out == "…" + full[-4:]
    await page.goto(panel.url + "/#/playground")
    await page.click("#use-server-key")
    await page.locator("#pg-key-hint").wait_for()
    assert await page.locator("#pg-key-hint").inner_text() == out
    await page.goto(panel.url + "/#/settings")
    await page.wait_for_function(
        "(v) => document.querySelector('#api-key-value').value === v", arg=out
    )


@needs_browser
async def test_a_new_tab_with_the_session_cookie_is_still_logged_in(
    panel: Panel, browser: Any
) -> None:
    await panel.change_default_password()
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        context.set_default_timeout(WAIT_MS)
        first = await context.new_page()
        await ui_login(first, panel.url)
        await first.locator("#page-tokens").wait_for()
        # A new tab shares the cookie but not the first tab's sessionStorage.
        second = await context.new_page()
        await second.goto(panel.url + "/#/jobs")
        await second.locator("#page-jobs").wait_for()
        assert await second.evaluate("sessionStorage.length") == 0
        assert await second.locator("#login-form").count() == 0
        # Logging out ends the cookie's session too: a third tab asks to log in.
        await second.click("#logout")
        await second.locator("#login-form").wait_for()
        third = await context.new_page()
        await third.goto(panel.url + "/")
        await third.locator("#login-form").wait_for()
    finally:
        await context.close()
    # Another browser (no cookie) is asked to log in.
    other = await browser.new_context()
    try:
        pg = await other.new_page()
        await pg.goto(panel.url + "/#/jobs")
        await pg.locator("#login-form").wait_for(timeout=WAIT_MS)
    finally:
        await other.close()
