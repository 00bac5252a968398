"""The Webhooks page in a real browser (fixtures from test_browser.py): a delivery that fails and
is retried shows its status and answer; the bootstrap key's secret is masked until revealed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from sora2api import keys

from . import test_browser as shared
from .conftest import KEY
from .helpers import add_token
from .keys_helpers import finished
from .test_browser import needs_browser, ui_login
from .test_webhooks import Receiver, until

browser, page, make_panel = shared.browser, shared.page, shared.make_panel

_ENV = {
    ("security", "allow_private_urls"): True,
    ("webhooks", "first_retry"): 0.05,
    ("webhooks", "backoff_factor"): 2.0,
    ("webhooks", "max_retry_interval"): 0.2,
}


@needs_browser
async def test_deliveries_show_their_status_and_the_secret_reveals(
    make_panel: shared.PanelFactory,
    page: Any,
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    rec = Receiver()
    rec.status = 500
    base = str((await aiohttp_server(rec.app())).make_url("")).rstrip("/")
    panel = await make_panel(_ENV)
    await panel.change_default_password()
    await add_token(panel.api, panel.sim.state.add_account())
    resp = await panel.api.post(
        "/v1/videos", json={"prompt": "a cat", "webhook_url": f"{base}/hook"}, headers=KEY
    )
    job_id = (await resp.json())["id"]
    await finished(panel.api, job_id)
    await until(panel.api, lambda rows: bool(rows) and rows[0].attempts >= 1)

    await ui_login(page, panel.url)
    await page.locator("#page-tokens").wait_for()
    await page.click("#nav a[data-page=webhooks]")
    row = page.locator("#webhook-rows tr", has_text=job_id)
    await row.locator(".badge", has_text="pending").wait_for()
    assert "HTTP 500" in await row.inner_text() and "video.completed" in await row.inner_text()

    secret = panel.app[keys.WEBHOOKS].bootstrap_secret
    shown = page.locator("#webhook-secret")
    assert await shown.input_value() == "…" + secret[-4:]
    assert secret not in await page.content()
    await page.click("#reveal-webhook-secret")
    await page.get_by_role("button", name="Hide").wait_for()
    assert await shown.input_value() == secret

    rec.status = 200
    await until(panel.api, lambda rows: rows[0].status == "delivered")
    await page.get_by_role("button", name="Reload").click()
    await row.locator(".badge", has_text="delivered").wait_for()
    await page.screenshot(path=str(tmp_path / "webhooks.png"), full_page=True)
