"""The admin panel in a real browser (Playwright driving Debian's Chromium) against the real app,
which listens on a real port with the simulator as its upstream.

Playwright's async API runs on the test's event loop, so the aiohttp servers keep serving while
the browser waits. The static-file and API-key checks at the end need no browser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from yarl import URL

from sora2api.app import create_app

from .conftest import KEY, Sim, config_for
from .helpers import add_token

CHROMIUM = "/usr/bin/chromium"
NEW_PASSWORD = "correct-horse-battery"
XSS = "<img src=x onerror=window.__xss=1>"
# Seconds a single UI expectation may take (the simulator runs at 1/100 of real time).
WAIT_MS = 15000

needs_browser = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing: install Debian's chromium (`make test` does it via apt)",
)


@dataclass
class Panel:
    """The app on a real port, an HTTP client for it, and the simulator behind it."""

    url: str
    api: TestClient
    sim: Sim
    app: web.Application

    async def admin_headers(self, password: str = NEW_PASSWORD) -> dict[str, str]:
        resp = await self.api.post("/api/login", json={"username": "admin", "password": password})
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}

    async def change_default_password(self) -> None:
        """What the first test does through the UI; the others start past it."""
        headers = await self.admin_headers("admin")
        resp = await self.api.post(
            "/api/admin/password",
            json={"old_password": "admin", "new_password": NEW_PASSWORD},
            headers=headers,
        )
        assert resp.status == 200, await resp.text()


PanelFactory = Callable[..., Awaitable[Panel]]


@pytest.fixture
def make_panel(
    sim: Sim,
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> PanelFactory:
    """Start the app on a free port; `env` = {("section", "key"): value} as if set by SORA2API_*."""

    async def make(env: dict[tuple[str, str], Any] | None = None) -> Panel:
        port = unused_port()
        url = f"http://127.0.0.1:{port}"
        # Media links must point at the port the browser reaches, not the configured one.
        config = config_for(sim, tmp_path, server={"public_url": url, "keepalive_interval": 15.0})
        if env:
            sections: dict[str, dict[str, Any]] = {}
            for (section, key), value in env.items():
                sections.setdefault(section, {})[key] = value
            config = dataclasses.replace(config.replace(**sections), env_overrides=frozenset(env))
        app = create_app(config)
        server = await aiohttp_server(app, port=port)
        return Panel(url, await aiohttp_client(server), sim, app)

    return make


@pytest.fixture
async def panel(make_panel: PanelFactory) -> Panel:
    return await make_panel()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # The CSP must not block anything the panel itself does.
    pg.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        yield pg
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        await context.close()


async def ui_login(page: Any, url: str, password: str = NEW_PASSWORD) -> None:
    await page.goto(url + "/login")
    await page.fill("#login-form input[name=username]", "admin")
    await page.fill("#login-form input[name=password]", password)
    await page.click("#login-form button[type=submit]")


async def tokens_of(panel: Panel) -> list[dict[str, Any]]:
    resp = await panel.api.get("/api/tokens", headers=KEY)
    assert resp.status == 200
    return (await resp.json())["data"]


# -- the flows ---------------------------------------------------------------------------------


@needs_browser
async def test_first_login_forces_password_change_then_add_token(
    panel: Panel, page: Any, tmp_path: Path
) -> None:
    await ui_login(page, panel.url, "admin")
    form = page.locator("#password-form")
    await form.wait_for()
    assert "default admin password" in await form.inner_text()
    # The other pages stay closed meanwhile: navigating there shows the same form again.
    await page.goto(panel.url + "/#/settings")
    await form.wait_for()
    await form.locator("input[name=old_password]").fill("admin")
    await form.locator("input[name=new_password]").fill(NEW_PASSWORD)
    await form.locator("input[name=repeat_password]").fill(NEW_PASSWORD)
    await form.locator("button[type=submit]").click()
    # The server revoked every session; the panel logs in again with the new password.
    await page.locator("#page-tokens").wait_for()
    assert await page.evaluate("location.pathname") == "/"
    resp = await panel.api.post("/api/login", json={"username": "admin", "password": "admin"})
    assert resp.status == 401

    account = panel.sim.state.add_account()
    await page.click("#add-token")
    add = page.locator("#add-token-form")
    await add.locator("textarea[name=credential]").fill(account.access_token)
    await add.get_by_text("Detected: access token (AT)").wait_for()
    await add.locator("input[name=remark]").fill("first token")
    await add.locator("button[type=submit]").click()
    row = page.locator("#token-rows tr", has_text=account.email)
    await row.locator(".badge", has_text="active").wait_for()
    assert "first token" in await row.inner_text()
    [token] = await tokens_of(panel)
    assert token["email"] == account.email and token["status"] == "active"
    await page.screenshot(path=str(tmp_path / "tokens.png"), full_page=True)


@needs_browser
async def test_playground_streams_an_image(panel: Panel, page: Any, tmp_path: Path) -> None:
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account())
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.click("#nav a[data-page=playground]")
    await page.click("#use-server-key")
    await page.locator("#pg-model option[value=sora-image]").wait_for(state="attached")
    await page.select_option("#pg-model", "sora-image")
    await page.fill("#pg-prompt", "a red fox in the snow")
    await page.click("#pg-send")
    img = page.locator("#pg-result img.result-image")
    await img.wait_for()
    # The picture really loads (same-origin /tmp link under public_url), not just the tag.
    await page.wait_for_function(
        "() => { const i = document.querySelector('#pg-result img'); return i && i.complete && i.naturalWidth > 0; }"
    )
    assert (await img.get_attribute("src")).startswith(panel.url + "/tmp/")
    log = await page.locator("#pg-log").inner_text()
    assert "[generation]" in log
    assert await page.locator("#pg-job").inner_text()
    await page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)

    # A video ends in a <video controls> whose source the server really serves.
    await page.select_option("#pg-model", "sora-video-10s")
    await page.fill("#pg-prompt", "waves at dusk")
    await page.click("#pg-send")
    video = page.locator("#pg-result video.result-video")
    await video.wait_for()
    src = await video.get_attribute("src")
    assert src.startswith(panel.url + "/tmp/") and await video.get_attribute("controls") == ""
    resp = await panel.api.get(src.removeprefix(panel.url))
    assert resp.status == 200 and resp.content_type == "video/mp4"
    assert await page.locator("#pg-status").inner_text() == "Done"


@needs_browser
async def test_cancel_a_running_video_from_the_jobs_page(
    panel: Panel, page: Any, tmp_path: Path
) -> None:
    panel.sim.state.settings.video_seconds = 100000.0  # 1000 s at the test time scale: never ends
    await panel.change_default_password()
    token_id = await add_token(panel.api, panel.sim.state.add_account())
    headers = await panel.admin_headers()

    async def stream_video() -> None:
        # A client that starts a streamed video and waits; cancelling ends its stream.
        async with (
            ClientSession() as s,
            s.post(
                panel.url + "/v1/chat/completions",
                json={
                    "model": "sora-video-10s",
                    "messages": [{"role": "user", "content": "waves"}],
                    "stream": True,
                },
                headers=KEY,
            ) as resp,
        ):
            assert resp.status == 200
            await resp.read()

    client_task = asyncio.create_task(stream_video())
    try:
        deadline = time.monotonic() + 10
        while True:
            jobs = (
                await (await panel.api.get("/api/jobs?status=in_progress", headers=headers)).json()
            )["jobs"]
            if jobs and jobs[0]["token_id"] and jobs[0]["stage"]:
                break
            assert time.monotonic() < deadline, "the video job never started"
            await asyncio.sleep(0.05)
        job_id = jobs[0]["id"]
        [token] = await tokens_of(panel)
        assert token["busy"]["video"] == 1

        await ui_login(page, panel.url)
        await page.locator("#page-tokens").wait_for()
        await page.goto(panel.url + "/#/jobs")
        row = page.locator(f'#job-rows tr[data-job-id="{job_id}"]')
        await row.locator(".badge", has_text="in progress").wait_for()
        await page.screenshot(path=str(tmp_path / "jobs.png"))
        await row.get_by_role("button", name="Cancel").click()
        await page.locator("dialog.confirm").get_by_role("button", name="Cancel job").click()
        await page.locator(".toast-ok", has_text=f"Job {job_id} cancelled").wait_for()
        # The 2 s poll redraws the row with its new status.
        await page.locator(
            f'#job-rows tr[data-job-id="{job_id}"][data-status="cancelled"]'
        ).wait_for()
        await asyncio.wait_for(client_task, 10)
    finally:
        client_task.cancel()
        await asyncio.gather(client_task, return_exceptions=True)

    job = await (await panel.api.get(f"/api/jobs/{job_id}", headers=headers)).json()
    assert job["status"] == "cancelled"
    [token] = await tokens_of(panel)
    assert token["id"] == token_id and token["busy"]["video"] == 0


@needs_browser
async def test_a_saved_setting_takes_effect(panel: Panel, page: Any, tmp_path: Path) -> None:
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account())
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.goto(panel.url + "/#/settings")
    # The API key stays masked until the admin asks to see it.
    full = KEY["Authorization"].removeprefix("Bearer ")
    key_is = "(v) => document.querySelector('#api-key-value').value === v"
    await page.wait_for_function(key_is, arg="…" + full[-4:])
    await page.click("#reveal-api-key")
    await page.wait_for_function(key_is, arg=full)
    await page.click("#reveal-api-key")
    await page.wait_for_function(key_is, arg="…" + full[-4:])

    card = page.locator('section.settings-card[data-section="generation"]')
    await card.wait_for()
    await card.locator('select[name="generation.content_format"]').select_option("markdown")
    await card.get_by_role("button", name="Save").click()
    await page.locator(".toast-ok", has_text="generation.content_format").wait_for()
    setting = page.locator('.setting[data-key="generation.content_format"]')
    await setting.locator(".badge", has_text="saved in panel").wait_for()

    # A bad value comes back as the server's own message, naming the key.
    upstream = page.locator('section.settings-card[data-section="upstream"]')
    await upstream.locator('input[name="upstream.image_timeout"]').fill("-5")
    await upstream.get_by_role("button", name="Save").click()
    error = upstream.locator(".form-error")
    await error.wait_for()
    assert "image_timeout must be from 1 to 86400" in await error.inner_text()
    assert "invalid" in (
        await upstream.locator('input[name="upstream.image_timeout"]').get_attribute("class") or ""
    )
    await page.screenshot(path=str(tmp_path / "settings.png"), full_page=True)

    headers = await panel.admin_headers()
    rows = (await (await panel.api.get("/api/admin/settings", headers=headers)).json())["settings"]
    row = next(r for r in rows if r["key"] == "generation.content_format")
    assert row["value"] == "markdown" and row["source"] == "panel"
    assert next(r for r in rows if r["key"] == "upstream.image_timeout")["source"] == "config"
    resp = await panel.api.post(
        "/v1/chat/completions",
        json={"model": "sora-image", "messages": [{"role": "user", "content": "a lighthouse"}]},
        headers=KEY,
    )
    assert resp.status == 200, await resp.text()
    content = (await resp.json())["choices"][0]["message"]["content"]
    assert content.startswith("![Generated Image](" + panel.url + "/tmp/")


@needs_browser
async def test_a_setting_from_the_environment_is_locked(
    make_panel: PanelFactory, page: Any
) -> None:
    panel = await make_panel(env={("generation", "queue_timeout"): 7.0})
    await panel.change_default_password()
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.goto(panel.url + "/#/settings")
    setting = page.locator('.setting[data-key="generation.queue_timeout"]')
    await setting.locator(".badge", has_text="environment (locked)").wait_for()
    control = setting.locator("input")
    assert await control.is_disabled() and await control.input_value() == "7"
    assert "SORA2API_GENERATION_QUEUE_TIMEOUT" in await setting.inner_text()


@needs_browser
async def test_server_text_is_never_html(panel: Panel, page: Any) -> None:
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account(), remark=XSS)
    await ui_login(page, panel.url)
    remark = page.locator("#token-rows .remark")
    await remark.wait_for()
    assert await remark.inner_text() == XSS
    assert await page.locator("#token-rows img").count() == 0
    assert await page.evaluate("typeof window.__xss") == "undefined"


@needs_browser
async def test_import_edit_disable_and_the_other_pages(
    panel: Panel, page: Any, tmp_path: Path
) -> None:
    await panel.change_default_password()
    good, other = panel.sim.state.add_account(), panel.sim.state.add_account()
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.click("#import-tokens")
    form = page.locator("#import-form")
    await form.locator("textarea[name=data]").fill(
        f"{good.access_token}\nnot-a-token\n{other.refresh_token}\n{good.access_token}\n"
    )
    await form.locator("button[type=submit]").click()
    results = form.locator(".import-results tbody tr")
    await results.nth(3).wait_for()
    texts = [await results.nth(i).inner_text() for i in range(4)]
    assert "created" in texts[0] and good.email in texts[0]
    assert "error" in texts[1]
    assert "created" in texts[2] and other.email in texts[2]
    assert "duplicate" in texts[3]
    await page.screenshot(path=str(tmp_path / "import.png"))
    await page.keyboard.press("Escape")

    row = page.locator("#token-rows tr", has_text=good.email)
    await row.get_by_role("button", name="Edit").click()
    edit = page.locator("#edit-token-form")
    await edit.locator("input[name=remark]").fill("edited in the panel")
    await edit.locator("input[name=video_concurrency]").fill("2")
    await edit.locator("input[name=image_enabled]").uncheck()
    await edit.locator("button[type=submit]").click()
    await page.locator(".toast-ok", has_text="saved").wait_for()
    await row.get_by_text("edited in the panel").wait_for()
    token = next(t for t in await tokens_of(panel) if t["email"] == good.email)
    assert token["remark"] == "edited in the panel" and token["video_concurrency"] == 2
    assert token["image_enabled"] is False and token["limits"]["video"] == 2

    await row.get_by_role("button", name="Disable").click()
    await row.locator(".badge", has_text="disabled").wait_for()
    await row.get_by_role("button", name="Enable").click()
    await row.locator(".badge", has_text="active").wait_for()

    # An account without Sora 2 gets an Activate button that redeems an invite code.
    locked = panel.sim.state.add_account(sora2=False)
    panel.sim.state.settings.bootstrap_activates = False
    await add_token(panel.api, locked)
    await page.get_by_role("button", name="Reload").click()
    row = page.locator("#token-rows tr", has_text=locked.email)
    await row.get_by_text("no Sora 2").wait_for()
    await row.get_by_role("button", name="Activate").click()
    await page.locator("#activate-form input[name=invite_code]").fill("SORA2SIM")
    await page.locator("#activate-form button[type=submit]").click()
    await page.locator(".toast-ok", has_text="activated").wait_for()
    await row.locator(".badge-ok", has_text="Sora 2").wait_for()
    assert await row.get_by_role("button", name="Activate").count() == 0

    # Export asks first (it holds every secret), then downloads the JSON file.
    await page.get_by_role("button", name="Export JSON").click()
    async with page.expect_download() as download_info:
        await page.locator("dialog.confirm").get_by_role("button", name="Download").click()
    download = await download_info.value
    assert download.suggested_filename == "sora2api-tokens.json"
    exported = await asyncio.to_thread(Path(await download.path()).read_text)
    assert good.access_token in exported and other.refresh_token in exported

    row = page.locator("#token-rows tr", has_text=other.email)
    await row.get_by_role("button", name="Delete").click()
    await page.locator("dialog.confirm").get_by_role("button", name="Delete").click()
    await page.locator(".toast-ok", has_text="deleted").wait_for()
    await row.wait_for(state="detached")
    assert other.email not in {t["email"] for t in await tokens_of(panel)}

    await page.goto(panel.url + "/#/logs")
    await page.locator("#page-logs td", has_text="/api/tokens").first.wait_for()
    await page.goto(panel.url + "/#/characters")
    await page.locator("#character-rows", has_text="No characters yet").wait_for()
    await page.goto(panel.url + "/#/jobs")
    await page.locator("#job-rows", has_text="No jobs").wait_for()


@needs_browser
async def test_stream_parsing_and_url_checks_in_the_browser(panel: Panel, page: Any) -> None:
    """The panel's own modules, run by the browser: SSE framing, result parsing, URL schemes."""
    await page.goto(panel.url + "/login")
    out = await page.evaluate(
        """async () => {
        const s = await import("/static/stream.js");
        const d = await import("/static/dom.js");
        const p = new s.SseParser();
        const events = [
          ...p.push(': ping\\n\\ndata: {"choices": [{"delta": {}}]}\\n\\nda'),
          ...p.push('ta: {"error": {"message": "boom"}}\\r\\n\\r\\ndata: [DONE]\\n\\ndata: {"late": 1}\\n\\n'),
        ];
        return {
          events: events.map((e) => e.type),
          error: events[1].error.message,
          markdown: s.parseResult("![Generated Image](http://h/tmp/a.png)\\n![Generated Image](http://h/tmp/b.png)"),
          video: s.parseResult('<video src="http://h/tmp/v.mp4?a=1&amp;b=2" controls></video>'),
          json: s.parseResult('{"type": "video", "url": "http://h/v.mp4"}'),
          failed: s.parseResult("Generation failed: no quota"),
          urls: ["javascript:alert(1)", "data:text/html,x", "/tmp/x.png", "https://cdn.example/x.mp4", "vbscript:x"].map(d.safeUrl),
        };
      }"""
    )
    assert out["events"] == ["chunk", "error", "done"] and out["error"] == "boom"
    assert out["markdown"]["urls"] == ["http://h/tmp/a.png", "http://h/tmp/b.png"]
    assert out["video"]["url"] == "http://h/tmp/v.mp4?a=1&b=2"
    assert out["json"] == {"type": "video", "url": "http://h/v.mp4"}
    assert out["failed"] == {"type": "error", "error": "no quota"}
    assert out["urls"] == [None, None, panel.url + "/tmp/x.png", "https://cdn.example/x.mp4", None]


@needs_browser
async def test_phone_width_has_no_page_overflow(panel: Panel, browser: Any, tmp_path: Path) -> None:
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account(), remark="a phone-sized check")
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        context.set_default_timeout(WAIT_MS)
        page = await context.new_page()
        await ui_login(page, panel.url)
        await page.locator("#token-rows tr[data-token-id]").wait_for()
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[2] and widths[1] <= widths[2], widths
        # Nor does the table scroll inside its box: each row is a card (test_browser_layout.py).
        wrap = await page.evaluate(
            "() => { const w = document.querySelector('.table-wrap'); return [w.scrollWidth, w.clientWidth]; }"
        )
        assert wrap[0] <= wrap[1]
        await page.screenshot(path=str(tmp_path / "phone-tokens.png"))
        # The nav is collapsed behind the menu button.
        assert not await page.locator("#nav a[data-page=jobs]").is_visible()
        await page.click("#menu-toggle")
        await page.locator("#nav a[data-page=settings]").click()
        await page.locator("section.settings-card").first.wait_for()
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[1], widths
        await page.screenshot(path=str(tmp_path / "phone-settings.png"), full_page=True)
    finally:
        await context.close()


# -- no browser needed -------------------------------------------------------------------------


async def test_static_files_are_served_safely(panel: Panel) -> None:
    for path in ("/", "/login", "/static/app.js", "/static/app.css"):
        resp = await panel.api.get(path)
        assert resp.status == 200, path
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-cache"
    assert (
        (await panel.api.get("/static/app.js"))
        .headers["Content-Type"]
        .startswith("text/javascript")
    )
    for raw in (
        "/static/..%2Fpyproject.toml",
        "/static/%2e%2e%2fapp.py",
        "/static/..%5Croutes%5Cpanel.py",
        "/static/.hidden.js",
        "/static/missing.js",
        "/static/app.py",
        "/static/%2Fetc%2Fpasswd",
    ):
        resp = await panel.api.get(URL(raw, encoded=True))
        assert resp.status == 404, raw
        assert "error" in await resp.json()
    resp = await panel.api.get(URL("/static/../routes/panel.py", encoded=True))
    assert resp.status == 404


async def test_api_key_is_revealed_only_on_request(panel: Panel) -> None:
    assert (await panel.api.get("/api/admin/apikey")).status == 401
    first = await panel.admin_headers("admin")
    resp = await panel.api.get("/api/admin/apikey?reveal=1", headers=first)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "password_change_required"
    await panel.change_default_password()
    headers = await panel.admin_headers()
    masked = await (await panel.api.get("/api/admin/apikey", headers=headers)).json()
    assert masked["revealed"] is False and KEY["Authorization"][-4:] in masked["api_key"]
    assert masked["api_key"] != KEY["Authorization"].removeprefix("Bearer ")
    full = await (await panel.api.get("/api/admin/apikey?reveal=1", headers=headers)).json()
    assert full["api_key"] == KEY["Authorization"].removeprefix("Bearer ")
    assert (await panel.api.get("/api/admin/apikey?reveal=1", headers=KEY)).status == 401


@needs_browser
async def test_add_an_openai_account_from_the_dialog(panel: Panel, page: Any) -> None:
    from sora2api.simulator.providers import PROVIDER_STATE

    await panel.change_default_password()
    account = panel.sim.server.app[PROVIDER_STATE].add_account("openai", name="gw1")
    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.click("#add-token")
    add = page.locator("#add-token-form")
    await add.locator("select[name=provider] option[value=openai]").wait_for(state="attached")
    await add.locator("select[name=provider]").select_option("openai")
    # The Sora fields give way to the key fields, the base URL prefilled with the SDK's default.
    await add.locator("#sora-fields").wait_for(state="hidden")
    base = add.locator("input[name=base_url]")
    assert await base.input_value() == "https://api.openai.com/v1"
    await add.locator("input[name=api_key]").fill(account.key)
    await base.fill(panel.sim.url + "/v1")
    await add.locator("input[name=models]").fill("sora-2, sora-2-pro")
    await add.locator("input[name=video_concurrency]").fill("2")
    await add.locator("button[type=submit]").click()

    row = page.locator("#token-rows tr", has_text=panel.sim.url + "/v1")
    await row.locator(".badge", has_text="active").wait_for()
    text = await row.inner_text()
    assert "restricted to: sora-2, sora-2-pro" in text and "veo-3.1-fast" in text
    assert "video 0/2" in text and account.key not in text
    [token] = await tokens_of(panel)
    assert token["provider"] == "openai" and token["models"] == ["sora-2", "sora-2-pro"]
    assert token["served_models"] == account.models
    calls = panel.sim.state.calls("GET", "/v1/models")
    assert [c.headers["authorization"] for c in calls] == [f"Bearer {account.key}"]

    # A wrong key shows the server's reason in the dialog and adds nothing.
    await page.click("#add-token")
    add = page.locator("#add-token-form")
    await add.locator("select[name=provider] option[value=openai]").wait_for(state="attached")
    await add.locator("select[name=provider]").select_option("openai")
    await add.locator("input[name=api_key]").fill("sk-wrong-key-1234567")
    await add.locator("input[name=base_url]").fill(panel.sim.url + "/v1")
    await add.locator("button[type=submit]").click()
    await add.locator(".form-error", has_text=re.compile(r"onboarding: (GET /)?models")).wait_for()
    assert len(await tokens_of(panel)) == 1
