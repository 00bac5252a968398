"""The Seedance (Volcengine Ark) upstream simulator, driven by the official Ark SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from volcenginesdkarkruntime import AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkInternalServerError,
    ArkNotFoundError,
    ArkRateLimitError,
)

from sora2api.simulator import SIM_STATE, SimState, create_simulator
from sora2api.simulator.providers import PROVIDER_STATE, ProviderAccount, ProviderState

MODEL = "doubao-seedance-2-0-260128"
TASKS = "/api/v3/contents/generations/tasks"


@dataclass
class Ark:
    server: TestServer
    sim: SimState
    ps: ProviderState
    account: ProviderAccount
    client: AsyncArk

    def url(self, path: str = "") -> str:
        return str(self.server.make_url(path))

    def sdk(self, key: str) -> AsyncArk:
        # The Ark SDK retries 429/5xx twice by default: off, so faults surface at once.
        return AsyncArk(api_key=key, base_url=self.url("/api/v3"), max_retries=0)

    async def control(self, path: str, body: Any) -> Any:
        async with aiohttp.ClientSession() as http, http.post(self.url(path), json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    def finish(self) -> None:
        self.sim.advance(10_000)


@pytest.fixture
async def ark(aiohttp_server: Any) -> AsyncIterator[Ark]:
    # Real-time scale: every state change below comes from advancing the clock, never waiting.
    app = create_simulator(time_scale=1.0, seed=11)
    server = await aiohttp_server(app)
    ps = app[PROVIDER_STATE]
    account = ps.add_account("seedance", name="ark1")
    client = AsyncArk(api_key=account.key, base_url=str(server.make_url("/api/v3")), max_retries=0)
    async with client:
        yield Ark(server, app[SIM_STATE], ps, account, client)


def _text(prompt: str = "a red kite over the sea") -> list[dict[str, Any]]:
    return [{"type": "text", "text": prompt}]


async def test_create_get_list_delete_with_the_sdk(ark: Ark) -> None:
    content = _text() + [
        {
            "type": "image_url",
            "image_url": {"url": "https://img.example/a.png"},
            "role": "first_frame",
        }
    ]
    created = await ark.client.content_generation.tasks.create(
        model=MODEL,
        content=content,
        ratio="16:9",
        resolution="720p",
        duration=5,
        seed=9,
        return_last_frame=True,
    )
    sent = ark.sim.calls("POST", TASKS)[-1]
    # The SDK sends every unset parameter as an explicit null; the simulator takes that as unset.
    assert sent.json["watermark"] is None and sent.json["callback_url"] is None
    assert sent.json["duration"] == 5 and sent.json["content"] == content
    assert "x-client-request-id" in sent.headers
    assert sent.headers["authorization"] == f"Bearer {ark.account.key}"

    task = await ark.client.content_generation.tasks.get(task_id=created.id)
    assert task.status == "queued" and task.model == MODEL and task.duration == 5
    ark.sim.advance(ark.sim.settings.scaled(5.0) + 0.01)
    assert (await ark.client.content_generation.tasks.get(task_id=created.id)).status == "running"

    ark.finish()
    task = await ark.client.content_generation.tasks.get(task_id=created.id)
    assert task.status == "succeeded" and (task.seed, task.ratio, task.resolution) == (
        9,
        "16:9",
        "720p",
    )
    assert (
        task.usage.completion_tokens > 0 and task.usage.total_tokens == task.usage.completion_tokens
    )
    assert task.framespersecond == 24
    async with aiohttp.ClientSession() as http:
        async with http.get(task.content.video_url) as resp:
            assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"
        async with http.get(task.content.last_frame_url) as resp:
            assert (await resp.read()).startswith(b"\x89PNG")

    listed = await ark.client.content_generation.tasks.list(page_size=10, status="succeeded")
    assert listed.total == 1 and listed.items[0].id == created.id
    await ark.client.content_generation.tasks.delete(created.id)
    with pytest.raises(ArkNotFoundError) as err:
        await ark.client.content_generation.tasks.get(task_id=created.id)
    assert err.value.code == "ResourceNotFound"


async def test_list_filters_and_pages(ark: Ark) -> None:
    ids = [
        (await ark.client.content_generation.tasks.create(model=m, content=_text())).id
        for m in (MODEL, MODEL, "doubao-seedance-2-0-fast-260128")
    ]
    tasks = ark.client.content_generation.tasks
    assert (await tasks.list(task_ids=ids[:2])).total == 2
    query = ark.sim.calls("GET", TASKS)[-1]
    assert query.query["filter.task_ids"] in ids[:2]  # the journal keeps one value per name
    assert {t.id for t in (await tasks.list(task_ids=ids[:2])).items} == set(ids[:2])
    assert (await tasks.list(model="doubao-seedance-2-0-fast-260128")).items[0].id == ids[2]
    page = await tasks.list(page_num=2, page_size=2)
    assert page.total == 3 and [t.id for t in page.items] == [ids[0]]  # newest first
    assert (await tasks.list(status="queued")).total == 3
    assert (await tasks.list(status="running")).total == 0
    with pytest.raises(ArkBadRequestError) as err:
        await tasks.list(status="weird")
    assert err.value.code == "InvalidParameter" and err.value.param == "filter.status"


async def test_cancel_queued_refuse_running(ark: Ark) -> None:
    tasks = ark.client.content_generation.tasks
    queued = await tasks.create(model=MODEL, content=_text())
    await tasks.delete(queued.id)
    assert (await tasks.get(task_id=queued.id)).status == "cancelled"
    running = await tasks.create(model=MODEL, content=_text())
    ark.sim.advance(ark.sim.settings.scaled(5.0) + 0.01)
    with pytest.raises(ArkBadRequestError):
        await tasks.delete(running.id)
    assert [e.status for e in ark.sim.calls("DELETE", f"{TASKS}/*")] == [200, 400]


async def test_signed_video_url_expires(ark: Ark) -> None:
    await ark.control("/_sim/providers/settings", {"url_ttl": 60})
    created = await ark.client.content_generation.tasks.create(model=MODEL, content=_text())
    ark.finish()
    url = (await ark.client.content_generation.tasks.get(task_id=created.id)).content.video_url
    assert "se=" in url and "sig=" in url
    ark.sim.advance(61)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 403 and b"Signed expiry time has passed" in await resp.read()
    # A fresh get signs a fresh link.
    url = (await ark.client.content_generation.tasks.get(task_id=created.id)).content.video_url
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200


async def test_wrong_key_and_bad_parameters(ark: Ark) -> None:
    async with ark.sdk("ark-wrong") as bad:
        with pytest.raises(ArkAuthenticationError) as err:
            await bad.content_generation.tasks.create(model=MODEL, content=_text())
    assert err.value.code == "AuthenticationError" and err.value.type == "Unauthorized"
    assert err.value.status_code == 401
    tasks = ark.client.content_generation.tasks
    with pytest.raises(ArkBadRequestError) as err:
        await tasks.create(model=MODEL, content=_text(), ratio="7:5")
    assert err.value.code == "InvalidParameter" and err.value.param == "ratio"
    with pytest.raises(ArkBadRequestError) as err:
        await tasks.create(model=MODEL, content=[])
    assert err.value.code == "InvalidParameter"
    with pytest.raises(ArkNotFoundError) as err:
        await tasks.create(model="no-such-model", content=_text())
    assert err.value.code == "ModelNotOpen"
    # Another key cannot see the task.
    created = await tasks.create(model=MODEL, content=_text())
    other = ark.ps.add_account("seedance", name="ark2")
    async with ark.sdk(other.key) as second:
        with pytest.raises(ArkNotFoundError):
            await second.content_generation.tasks.get(task_id=created.id)


async def test_safety_blocks_on_input_and_output(ark: Ark) -> None:
    tasks = ark.client.content_generation.tasks
    with pytest.raises(ArkBadRequestError) as err:
        await tasks.create(model=MODEL, content=_text("something forbidden"))
    assert err.value.code == "InputTextSensitiveContentDetected"
    image = {
        "type": "image_url",
        "image_url": {"url": "https://x/forbidden.png"},
        "role": "first_frame",
    }
    with pytest.raises(ArkBadRequestError) as err:
        await tasks.create(model=MODEL, content=_text() + [image])
    assert err.value.code == "InputImageSensitiveContentDetected"
    assert ark.ps.tasks == {}  # refused before any task existed

    await ark.control("/_sim/scenario", {"outcome": "violation", "email": "ark1"})
    created = await tasks.create(model=MODEL, content=_text())
    ark.finish()
    task = await tasks.get(task_id=created.id)
    assert task.status == "failed" and task.error.code == "OutputVideoSensitiveContentDetected"


async def test_expired_when_never_run(ark: Ark) -> None:
    await ark.control("/_sim/scenario", {"outcome": "success", "email": "ark1", "plateau": True})
    tasks = ark.client.content_generation.tasks
    created = await tasks.create(model=MODEL, content=_text(), execution_expires_after=3600)
    ark.sim.advance(ark.sim.settings.scaled(3600) + 1)
    assert (await tasks.get(task_id=created.id)).status == "expired"


async def test_faults_raise_the_sdk_error_classes(ark: Ark) -> None:
    answer = await ark.control(
        "/_sim/providers/faults",
        {
            "provider": "seedance",
            "error": "RateLimitExceeded",
            "method": "POST",
            "token": ark.account.key,
        },
    )
    assert answer["body"]["error"]["code"] == "RateLimitExceeded"
    tasks = ark.client.content_generation.tasks
    with pytest.raises(ArkRateLimitError) as err:
        await tasks.create(model=MODEL, content=_text())
    assert err.value.code == "RateLimitExceeded" and err.value.status_code == 429
    created = await tasks.create(model=MODEL, content=_text())  # times=1: gone
    assert [e.fault for e in ark.sim.calls("POST", TASKS)] == ["custom", None]
    await ark.control(
        "/_sim/providers/faults",
        {"provider": "seedance", "error": "InternalServiceError", "method": "GET"},
    )
    with pytest.raises(ArkInternalServerError):
        await tasks.get(task_id=created.id)
    with pytest.raises(AssertionError, match="unknown seedance error 'Nope'"):
        await ark.control("/_sim/providers/faults", {"provider": "seedance", "error": "Nope"})


async def test_vanish_and_reset(ark: Ark) -> None:
    await ark.control("/_sim/scenario", {"outcome": "vanish", "email": "ark1"})
    tasks = ark.client.content_generation.tasks
    gone = await tasks.create(model=MODEL, content=_text())
    assert (await tasks.get(task_id=gone.id)).status == "queued"
    ark.finish()
    with pytest.raises(ArkNotFoundError):
        await tasks.get(task_id=gone.id)
    kept = await tasks.create(model=MODEL, content=_text())
    # The shared reset starts the providers over too; keep_accounts keeps their keys.
    await ark.control("/_sim/reset", {"keep_accounts": True})
    assert ark.ps.tasks == {} and ark.sim.journal == []
    with pytest.raises(ArkNotFoundError):
        await tasks.get(task_id=kept.id)
    await ark.control("/_sim/reset", {})
    with pytest.raises(ArkAuthenticationError):
        await tasks.get(task_id=kept.id)
