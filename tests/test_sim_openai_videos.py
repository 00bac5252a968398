"""The OpenAI-Videos-shaped upstream simulator, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from sora2api.simulator import SIM_STATE, SimState, create_simulator, png
from sora2api.simulator.providers import PROVIDER_STATE, ProviderAccount, ProviderState

ROOT = Path(__file__).resolve().parent.parent
# client.videos is deprecated in openai-python 3.x (the Sora API shutdown notice); gateways live on.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Gateway:
    server: TestServer
    sim: SimState
    ps: ProviderState
    account: ProviderAccount
    client: AsyncOpenAI

    def url(self, path: str = "") -> str:
        return str(self.server.make_url(path))

    def sdk(self, key: str) -> AsyncOpenAI:
        return AsyncOpenAI(api_key=key, base_url=self.url("/v1"), max_retries=0)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url(path), json=body) as resp,
        ):
            assert resp.status < 300, await resp.text()
            return await resp.json()

    def finish(self) -> None:
        self.sim.advance(10_000)


@pytest.fixture
async def gw(aiohttp_server: Any) -> AsyncIterator[Gateway]:
    # Real-time scale: every state change below comes from advancing the clock, never waiting.
    app = create_simulator(time_scale=1.0, seed=7)
    server = await aiohttp_server(app)
    ps = app[PROVIDER_STATE]
    account = ps.add_account("openai", name="gw1")
    async with AsyncOpenAI(
        api_key=account.key, base_url=str(server.make_url("/v1")), max_retries=0
    ) as client:
        yield Gateway(server, app[SIM_STATE], ps, account, client)


async def test_full_lifecycle_with_the_sdk(gw: Gateway) -> None:
    video = await gw.client.videos.create(
        prompt="a fox", model="sora-2", seconds="8", size="1280x720"
    )
    assert video.status == "queued" and video.progress == 0 and video.object == "video"
    assert (video.seconds, video.size, video.model) == ("8", "1280x720", "sora-2")
    create = gw.sim.calls("POST", "/v1/videos")[-1]
    # The SDK always sends multipart, even without a file.
    assert create.json is None and create.form["prompt"]["text"] == "a fox"
    assert create.form["seconds"]["text"] == "8"
    assert create.headers["authorization"] == f"Bearer {gw.account.key}"

    gw.sim.advance(gw.sim.settings.scaled(5.0) + gw.sim.settings.scaled(30.0))
    running = await gw.client.videos.retrieve(video.id)
    assert running.status == "in_progress" and 1 <= running.progress <= 99

    gw.finish()
    done = await gw.client.videos.retrieve(video.id)
    assert done.status == "completed" and done.progress == 100 and done.completed_at
    assert done.expires_at and done.error is None

    content = await gw.client.videos.download_content(video.id)
    data = content.read()
    assert data[4:8] == b"ftyp" and len(data) >= 1024
    thumb = await gw.client.videos.download_content(video.id, variant="thumbnail")
    assert thumb.read().startswith(b"\x89PNG")

    remix = await gw.client.videos.remix(video.id, prompt="the fox, at night")
    assert remix.remixed_from_video_id == video.id and remix.status == "queued"
    page = await gw.client.videos.list(limit=10)
    assert {v.id for v in page.data} == {video.id, remix.id}

    deleted = await gw.client.videos.delete(video.id)
    assert deleted.deleted is True and deleted.id == video.id and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        await gw.client.videos.retrieve(video.id)
    assert [e.status for e in gw.sim.calls("*", "/v1/videos*")][-1] == 404


async def test_input_reference_upload_and_json_create(gw: Gateway) -> None:
    image = png((10, 200, 30))
    video = await gw.client.videos.create(
        prompt="animate it", input_reference=("ref.png", image, "image/png")
    )
    part = gw.sim.calls("POST", "/v1/videos")[-1].form["input_reference"]
    assert part["filename"] == "ref.png" and part["size"] == len(image)
    assert gw.ps.tasks[video.id].params["image"] == "image/png"

    with pytest.raises(openai.BadRequestError) as err:
        await gw.client.videos.create(prompt="x", input_reference=("a.txt", b"hello", "text/plain"))
    assert err.value.code == "invalid_value" and err.value.param == "input_reference"

    # Raw clients and gateways also post JSON with an image URL.
    headers = {"Authorization": f"Bearer {gw.account.key}"}
    body = {"prompt": "p", "model": "sora-2", "input_reference": {"image_url": "https://x/a.png"}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url("/v1/videos"), json=body, headers=headers) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["status"] == "queued"
    assert gw.sim.calls("POST", "/v1/videos")[-1].json == body


async def test_bad_requests_name_the_problem(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        await gw.client.videos.create(prompt="x", model="no-such-model")
    assert err.value.param == "model" and "sora-2" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        await gw.client.videos.create(prompt="x", size="huge")  # type: ignore[arg-type]
    assert err.value.param == "size"
    with pytest.raises(openai.BadRequestError) as err:
        await gw.client.videos.create(prompt="something forbidden")
    assert err.value.code == "moderation_blocked"
    video = await gw.client.videos.create(prompt="x")
    with pytest.raises(openai.BadRequestError) as err:
        await gw.client.videos.download_content(video.id)
    assert err.value.code == "video_not_ready"


async def test_wrong_key_and_key_scoping(gw: Gateway) -> None:
    async with gw.sdk("sk-wrong-0000000000") as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            await bad.videos.create(prompt="x")
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert err.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    video = await gw.client.videos.create(prompt="mine")
    other = gw.ps.add_account("openai", name="gw2")
    async with gw.sdk(other.key) as second:
        with pytest.raises(openai.NotFoundError):
            await second.videos.retrieve(video.id)
        assert (await second.videos.list()).data == []
    gw.finish()
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url(f"/v1/videos/{video.id}/content")) as resp:
            assert resp.status == 401
        headers = {"Authorization": f"Bearer {gw.account.key}", "Range": "bytes=0-99"}
        async with http.get(gw.url(f"/v1/videos/{video.id}/content"), headers=headers) as resp:
            assert resp.status == 206 and resp.headers["Content-Range"].startswith("bytes 0-99/")
            assert (await resp.read())[4:8] == b"ftyp"


async def test_models_list(gw: Gateway) -> None:
    models = await gw.client.models.list()
    assert [m.id for m in models.data] == gw.account.models
    await gw.control("POST", "/_sim/providers/accounts/gw1", {"models": ["veo-3.1-fast"]})
    assert [m.id for m in (await gw.client.models.list()).data] == ["veo-3.1-fast"]


async def test_faults_raise_the_sdk_error_classes(gw: Gateway) -> None:
    answer = await gw.control(
        "POST",
        "/_sim/providers/faults",
        {"provider": "openai", "error": "rate_limit", "retry_after": 7, "token": gw.account.key},
    )
    assert answer["status"] == 429
    with pytest.raises(openai.RateLimitError) as err:
        await gw.client.videos.create(prompt="x")
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.code == "rate_limit_exceeded"
    # times=1 by default: the next create goes through, and the journal shows both.
    await gw.client.videos.create(prompt="x")
    creates = gw.sim.calls("POST", "/v1/videos")
    assert [(e.status, e.fault) for e in creates] == [(429, "custom"), (200, None)]

    other = gw.ps.add_account("openai", name="gw2")
    await gw.control(
        "POST",
        "/_sim/providers/faults",
        {"provider": "openai", "error": "server_error", "token": other.key, "times": None},
    )
    async with gw.sdk(other.key) as second:
        with pytest.raises(openai.InternalServerError):
            await second.videos.list()
    await gw.client.videos.list()  # the fault is scoped to the other key
    # The shared kinds work on the gateway's paths too.
    await gw.control(
        "POST",
        "/_sim/faults",
        {"method": "GET", "path": "/v1/videos/*", "kind": "hang", "seconds": 30},
    )
    with pytest.raises(openai.APITimeoutError):
        await gw.client.videos.retrieve("video_x", timeout=0.3)


async def test_scripted_failures(gw: Gateway) -> None:
    await gw.control("POST", "/_sim/scenario", {"outcome": "violation", "email": "gw1"})
    blocked = await gw.client.videos.create(prompt="x")
    await gw.control(
        "POST", "/_sim/scenario", {"outcome": "fail", "email": "gw1", "message": "boom"}
    )
    failed = await gw.client.videos.create(prompt="x")
    gw.finish()
    got = await gw.client.videos.retrieve(blocked.id)
    assert got.status == "failed" and got.error and got.error.code == "moderation_blocked"
    got = await gw.client.videos.retrieve(failed.id)
    assert got.status == "failed" and got.error and got.error.message == "boom"


async def test_delete_cancels_a_running_video(gw: Gateway) -> None:
    video = await gw.client.videos.create(prompt="x")
    await gw.client.videos.delete(video.id)
    assert gw.ps.tasks[video.id].cancelled_at is not None
    assert gw.sim.calls("DELETE", f"/v1/videos/{video.id}")[0].status == 200


async def _raw(gw: Gateway, path: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key or gw.account.key}"}
    async with aiohttp.ClientSession() as http, http.get(gw.url(path), headers=headers) as resp:
        return resp.status, await resp.json()


async def test_lenient_reader_variants(gw: Gateway) -> None:
    video = await gw.client.videos.create(prompt="x")
    await gw.control(
        "POST",
        "/_sim/providers/variant",
        {
            "status_case": "upper",
            "unknown_queued": True,
            "id_field": "task_id",
            "wrap": True,
            "progress": False,
        },
    )
    status, body = await _raw(gw, f"/v1/videos/{video.id}")
    assert status == 200 and body["code"] == "success"
    data = body["data"]
    assert data["task_id"] == video.id and "id" not in data and "progress" not in data
    assert data["status"] == "UNKNOWN"

    gw.sim.advance(gw.sim.settings.scaled(5.0) + gw.sim.settings.scaled(30.0))
    await gw.control(
        "POST",
        "/_sim/providers/accounts/gw1",
        {"variant": {"processing": True, "status_case": "lower", "wrap": False}},
    )
    status, body = await _raw(gw, f"/v1/videos/{video.id}")
    assert body["status"] == "processing" and body["task_id"] == video.id

    # new-api's error envelopes.
    await gw.control("POST", "/_sim/providers/accounts/gw1", {"variant": {"error_style": "newapi"}})
    status, body = await _raw(gw, "/v1/videos/video_missing")
    assert status == 404 and body["error"]["type"] == "new_api_error"
    await gw.control(
        "POST", "/_sim/providers/accounts/gw1", {"variant": {"error_style": "newapi_task"}}
    )
    status, body = await _raw(gw, "/v1/videos/video_missing")
    assert status == 404 and body == {
        "code": "video_not_found",
        "message": body["message"],
        "data": None,
    }
    # Another key keeps the provider-wide variant.
    other = gw.ps.add_account("openai", name="gw2")
    status, body = await _raw(gw, "/v1/videos/video_missing", other.key)
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    status, body = await _raw(gw, "/v1/videos", other.key)
    assert body["code"] == "success" and body["data"]["data"] == []


async def test_cli_seeds_provider_keys() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sora2api.simulator", "--port", str(port), "--accounts", "0",
        "--provider-keys", "1", "--provider-key", "openai=sk-demo-gateway-1",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not any("Running on" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
        keys = [line for line in lines if " key " in line]
        assert [line.split()[0] for line in keys] == ["openai", "openai", "seedance", "gemini"]
        assert f"SDK base_url http://127.0.0.1:{port}/api/v3" in keys[2]
        base = f"http://127.0.0.1:{port}/v1"
        async with AsyncOpenAI(api_key="sk-demo-gateway-1", base_url=base, max_retries=0) as c:
            assert (await c.videos.create(prompt="demo")).status == "queued"
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
