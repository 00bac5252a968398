"""The Gemini Omni (Interactions API) upstream simulator, driven by the official google-genai SDK."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import _interactions as gi
from google.genai import types

from sora2api.simulator import SIM_STATE, SimState, create_simulator, png
from sora2api.simulator.providers import PROVIDER_STATE, ProviderAccount, ProviderState

MODEL = "gemini-omni-1.1-flash"
# google-genai's async file download subclasses aiohttp.ClientSession, which aiohttp 3.14 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)
VIDEO = {"type": "video", "aspect_ratio": "9:16", "resolution": "720p", "duration": "6"}


@dataclass
class Omni:
    server: TestServer
    sim: SimState
    ps: ProviderState
    account: ProviderAccount
    client: genai.client.AsyncClient

    def url(self, path: str = "") -> str:
        return str(self.server.make_url(path))

    def sdk(self, key: str) -> genai.Client:
        # google-genai retries 408/429/5xx 4 times by default: one attempt, so faults surface.
        options = types.HttpOptions(
            base_url=self.url(""), retry_options=types.HttpRetryOptions(attempts=1)
        )
        return genai.Client(api_key=key, http_options=options)

    async def control(self, path: str, body: Any) -> Any:
        async with aiohttp.ClientSession() as http, http.post(self.url(path), json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    def finish(self) -> None:
        self.sim.advance(10_000)


@pytest.fixture
async def omni(aiohttp_server: Any) -> AsyncIterator[Omni]:
    # Real-time scale: every state change below comes from advancing the clock, never waiting.
    app = create_simulator(time_scale=1.0, seed=5)
    server = await aiohttp_server(app)
    ps = app[PROVIDER_STATE]
    account = ps.add_account("gemini", name="g1")
    options = types.HttpOptions(
        base_url=str(server.make_url("")), retry_options=types.HttpRetryOptions(attempts=1)
    )
    client = genai.Client(api_key=account.key, http_options=options).aio
    try:
        yield Omni(server, app[SIM_STATE], ps, account, client)
    finally:
        await client.aclose()


async def test_background_interaction_inline_video(omni: Omni) -> None:
    created = await omni.client.interactions.create(
        model=MODEL, input="a paper boat in the rain", background=True, response_format=VIDEO
    )
    assert created.status == "in_progress" and created.id and created.model == MODEL
    sent = omni.sim.calls("POST", "/v1/interactions")[-1]  # google-genai 3.x talks to /v1
    assert sent.headers["x-goog-api-key"] == omni.account.key
    assert sent.json["background"] is True and sent.json["response_format"] == VIDEO

    assert (await omni.client.interactions.get(created.id)).status == "in_progress"
    assert omni.sim.calls("GET", f"/v1/interactions/{created.id}")[-1].query == {"stream": "false"}
    omni.finish()
    done = await omni.client.interactions.get(created.id)
    assert done.status == "completed" and done.usage and done.usage.total_tokens
    video = done.output_video  # derived by the SDK from the model_output step
    assert video is not None and video.mime_type == "video/mp4" and video.uri is None
    assert base64.b64decode(video.data)[4:8] == b"ftyp"  # type: ignore[arg-type]
    assert done.steps and done.steps[0].type == "model_output"


async def test_uri_delivery_needs_the_key(omni: Omni) -> None:
    fmt = {**VIDEO, "delivery": "uri"}
    created = await omni.client.interactions.create(
        model=MODEL, input="x", background=True, response_format=fmt
    )
    omni.finish()
    video = (await omni.client.interactions.get(created.id)).output_video
    assert video is not None and video.uri and video.data is None
    async with aiohttp.ClientSession() as http:
        async with http.get(video.uri) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        async with http.get(video.uri, headers={"x-goog-api-key": omni.account.key}) as resp:
            assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"
        async with http.get(video.uri + f"&key={omni.account.key}") as resp:
            assert resp.status == 200
    # The SDK's own download takes "files/<id>" with an http base (it strips only https URIs).
    name = "files/" + video.uri.split("/files/")[1].split(":")[0]
    data = await omni.client.files.download(file=name)
    assert data[4:8] == b"ftyp"


async def test_image_input_parts_and_v1beta(omni: Omni) -> None:
    image = base64.b64encode(png((1, 2, 3))).decode()
    parts: Any = [
        {"type": "text", "text": "make it move"},
        {"type": "image", "data": image, "mime_type": "image/png"},
    ]
    created = await omni.client.interactions.create(
        model=MODEL, input=parts, background=True, response_format=VIDEO
    )
    sent = omni.sim.calls("POST", "/v1/interactions")[-1].json
    # The SDK wraps a list of parts into one user_input step.
    assert sent["input"][0]["type"] == "user_input" and len(sent["input"][0]["content"]) == 2
    assert omni.ps.tasks[created.id].params["images"] == 1
    # The written docs' /v1beta path is served as well.
    body = {"model": MODEL, "input": "x", "background": True, "response_format": VIDEO}
    headers = {"x-goog-api-key": omni.account.key}
    async with (
        aiohttp.ClientSession() as http,
        http.post(omni.url("/v1beta/interactions"), json=body, headers=headers) as resp,
    ):
        assert resp.status == 200 and (await resp.json())["object"] == "interaction"


async def test_cancel_and_delete(omni: Omni) -> None:
    created = await omni.client.interactions.create(
        model=MODEL, input="x", background=True, response_format=VIDEO
    )
    cancelled = await omni.client.interactions.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert omni.sim.calls("POST", f"/v1/interactions/{created.id}/cancel")[0].status == 200
    with pytest.raises(gi.BadRequestError):
        await omni.client.interactions.cancel(created.id)  # no longer in progress
    other = await omni.client.interactions.create(
        model=MODEL, input="x", background=True, response_format=VIDEO
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            omni.url(f"/v1beta/interactions/{other.id}:cancel"),
            headers={"x-goog-api-key": omni.account.key},
        ) as resp,
    ):
        assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    await omni.client.interactions.delete(created.id)
    with pytest.raises(gi.NotFoundError):
        await omni.client.interactions.get(created.id)


async def test_wrong_and_suspended_keys(omni: Omni) -> None:
    async with omni.sdk("AIza-wrong").aio as bad:
        with pytest.raises(gi.BadRequestError) as err:
            await bad.interactions.create(
                model=MODEL, input="x", background=True, response_format=VIDEO
            )
    assert err.value.status_code == 400
    body: Any = err.value.body
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    suspended = omni.ps.add_account("gemini", name="g2", suspended=True)
    async with omni.sdk(suspended.key).aio as denied:
        with pytest.raises(gi.PermissionDeniedError) as err:
            await denied.interactions.get("v1_anything")
    assert err.value.status_code == 403

    created = await omni.client.interactions.create(
        model=MODEL, input="x", background=True, response_format=VIDEO
    )
    third = omni.ps.add_account("gemini", name="g3")
    async with omni.sdk(third.key).aio as other:
        with pytest.raises(gi.NotFoundError):
            await other.interactions.get(created.id)


async def test_validation_errors(omni: Omni) -> None:
    interactions = omni.client.interactions
    with pytest.raises(gi.BadRequestError) as err:
        await interactions.create(
            model=MODEL, input="x", background=True, response_format={**VIDEO, "duration": "30"}
        )
    assert "duration" in err.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(gi.BadRequestError):
        await interactions.create(
            model=MODEL,
            input="x",
            background=True,
            response_format={**VIDEO, "aspect_ratio": "4:3"},
        )
    with pytest.raises(gi.NotFoundError):
        await interactions.create(
            model="gemini-9", input="x", background=True, response_format=VIDEO
        )
    assert omni.ps.tasks == {}


async def test_safety_blocks_on_input_and_output(omni: Omni) -> None:
    interactions = omni.client.interactions
    blocked_in = await interactions.create(
        model=MODEL, input="something forbidden", background=True, response_format=VIDEO
    )
    assert blocked_in.status == "failed" and blocked_in.errors
    assert blocked_in.errors[0].code == "PROHIBITED_CONTENT"

    await omni.control("/_sim/scenario", {"outcome": "violation", "email": "g1"})
    blocked_out = await interactions.create(
        model=MODEL, input="x", background=True, response_format=VIDEO
    )
    await omni.control("/_sim/scenario", {"outcome": "fail", "email": "g1", "message": "boom"})
    failed = await interactions.create(
        model=MODEL, input="x", background=True, response_format=VIDEO
    )
    omni.finish()
    got = await interactions.get(blocked_out.id)
    assert got.status == "failed" and got.errors and got.errors[0].code == "SAFETY"
    assert got.output_video is None
    got = await interactions.get(failed.id)
    assert got.status == "failed" and got.errors and got.errors[0].message == "boom"
    await omni.control("/_sim/providers/settings", {"gemini_block_status": "incomplete"})
    got = await interactions.get(blocked_out.id)
    assert got.status == "incomplete" and got.errors and got.errors[0].code == "SAFETY"


async def test_faults_raise_the_sdk_error_classes(omni: Omni) -> None:
    await omni.control(
        "/_sim/providers/faults",
        {
            "provider": "gemini",
            "error": "RESOURCE_EXHAUSTED",
            "retry_delay": "17s",
            "token": omni.account.key,
        },
    )
    interactions = omni.client.interactions
    with pytest.raises(gi.RateLimitError) as err:
        await interactions.create(model=MODEL, input="x", background=True, response_format=VIDEO)
    body: Any = err.value.body
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    retry = [d for d in body["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]
    # Scoped to that key (x-goog-api-key counts as the fault's token); times=1 by default.
    created = await interactions.create(
        model=MODEL, input="x", background=True, response_format=VIDEO
    )
    calls = omni.sim.calls("POST", "/v1/interactions")
    assert [(c.status, c.fault) for c in calls] == [(429, "custom"), (200, None)]
    # A daily quota, scoped to a key that travels as ?key= rather than the header.
    fault = {"provider": "gemini", "error": "RESOURCE_EXHAUSTED", "daily": True, "method": "GET"}
    await omni.control("/_sim/providers/faults", {**fault, "token": omni.account.key})
    url = omni.url(f"/v1/interactions/{created.id}?key={omni.account.key}")
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 429
        quota = (await resp.json())["error"]["details"][0]["violations"][0]["quotaId"]
        assert "PerDay" in quota

    await omni.control(
        "/_sim/providers/faults",
        {"provider": "gemini", "error": "PERMISSION_DENIED", "method": "GET"},
    )
    with pytest.raises(gi.PermissionDeniedError):
        await interactions.get(created.id)
    await omni.control("/_sim/providers/faults", {"provider": "gemini", "error": "UNAVAILABLE"})
    with pytest.raises(gi.APIStatusError) as status_err:
        await interactions.get(created.id)
    assert status_err.value.status_code == 503


async def test_models_list_shares_the_path_with_the_gateway(omni: Omni) -> None:
    headers = {"x-goog-api-key": omni.account.key}
    async with aiohttp.ClientSession() as http:
        async with http.get(omni.url("/v1/models"), headers=headers) as resp:
            assert (await resp.json())["models"][0]["name"] == f"models/{MODEL}"
        async with http.get(omni.url("/v1/models")) as resp:
            assert resp.status == 401  # no Google key: the gateway's list answers
