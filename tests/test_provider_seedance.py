"""The Seedance provider against the Ark simulator: onboarding, the create body, polls, errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sora2api.app import create_app
from sora2api.providers.base import Account, ImageInput, ModelSpec, Submission
from sora2api.providers.seedance import PROVIDER, SeedanceProvider
from sora2api.providers.seedance.models import TABLE
from sora2api.providers.seedance.provider import served_models
from sora2api.simulator import SIM_STATE, SimState, create_simulator, png
from sora2api.simulator.providers import PROVIDER_STATE, ProviderAccount, ProviderState
from sora2api.upstream.errors import Kind, UpstreamFailure

from .conftest import KEY, Sim, config_for
from .helpers import admin_headers
from .provider_app import ProviderApp, until

MODEL = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"
TASKS = "/api/v3/contents/generations/tasks"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@dataclass
class Ark:
    server: TestServer
    sim: SimState
    ps: ProviderState
    sim_account: ProviderAccount
    account: Account
    http: aiohttp.ClientSession
    provider: SeedanceProvider

    def spec(self, model_id: str = MODEL) -> ModelSpec:
        return next(m for m in self.provider.models(tuple(TABLE)) if m.id == model_id)

    async def control(self, path: str, body: Any) -> Any:
        async with self.http.post(self.server.make_url(path), json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def fault(self, error: str, method: str = "POST", **extra: Any) -> None:
        body = {"provider": "seedance", "error": error, "method": method, **extra}
        await self.control("/_sim/providers/faults", body)

    async def raw_fault(self, kind: str, method: str = "POST", **params: Any) -> None:
        body = {"method": method, "path": TASKS + "*", "kind": kind, **params}
        await self.control("/_sim/faults", body)

    def run_to(self, seconds: float) -> None:
        self.sim.advance(self.sim.settings.scaled(seconds) + 0.01)

    def creates(self) -> list[dict[str, Any]]:
        return [dict(e.json or {}) for e in self.sim.calls("POST", TASKS)]


@pytest.fixture
async def ark(aiohttp_server: Any) -> AsyncIterator[Ark]:
    # Real-time scale: every state change comes from advancing the simulator's clock.
    app = create_simulator(time_scale=1.0, seed=11)
    server = await aiohttp_server(app)
    ps = app[PROVIDER_STATE]
    sim_account = ps.add_account("seedance", name="ark1")
    base = str(server.make_url("/api/v3"))
    account = Account(id=1, provider="seedance", key=sim_account.key, base_url=base)
    async with aiohttp.ClientSession() as http:
        yield Ark(server, app[SIM_STATE], ps, sim_account, account, http, PROVIDER)


async def _fails(coro: Any) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as err:
        await coro
    return err.value


# --- onboarding and models -------------------------------------------------------------------


async def test_onboard_validates_the_key_with_a_one_item_list(ark: Ark) -> None:
    info = await ark.provider.onboard(ark.http, ark.account)
    assert info.models == tuple(TABLE)  # a local base names no region: every id in the table
    (call,) = ark.sim.calls("GET", TASKS)
    assert call.status == 200 and call.query["page_size"] == "1"
    assert call.headers["authorization"] == f"Bearer {ark.sim_account.key}"
    assert ark.sim.calls("POST", TASKS) == []  # onboarding never creates anything


async def test_onboard_wrong_key_is_token_invalid_with_arks_message(ark: Ark) -> None:
    wrong = replace(ark.account, key="ark-wrong")
    failure = await _fails(ark.provider.onboard(ark.http, wrong))
    assert failure.kind is Kind.TOKEN_INVALID and failure.status == 401
    assert failure.code == "AuthenticationError"
    assert failure.message == "The API key or AK/SK in the request is missing or invalid."
    assert "ark-wrong" not in failure.describe()


async def test_onboard_garbage_or_rate_limit_is_not_a_verdict_on_the_key(ark: Ark) -> None:
    await ark.raw_fault("custom", method="GET", status=200, json=["not", "a", "page"])
    failure = await _fails(ark.provider.onboard(ark.http, ark.account))
    assert failure.kind is Kind.MALFORMED
    await ark.fault("RateLimitExceeded", method="GET")
    failure = await _fails(ark.provider.onboard(ark.http, ark.account))
    assert failure.kind is Kind.RATE_LIMITED and failure.code == "RateLimitExceeded"


def test_served_models_follow_the_region_of_the_base_url() -> None:
    byteplus = served_models("https://ark.ap-southeast.bytepluses.com/api/v3")
    assert byteplus == ("dreamina-seedance-2-0-260128",)
    volc = served_models("https://ark.cn-beijing.volces.com/api/v3")
    assert MODEL in volc and FAST in volc and not any(m.startswith("dreamina") for m in volc)
    assert served_models("http://127.0.0.1:9/api/v3") == tuple(TABLE)


def test_models_public_ids_aliases_and_permissive_unknowns() -> None:
    specs = {m.id: m for m in PROVIDER.models((MODEL, FAST, "doubao-seedance-9-9-999999"))}
    base = specs[MODEL]
    assert base.upstream == MODEL and base.provider == "seedance" and base.kind == "video"
    assert base.seconds == tuple(range(4, 16)) and base.default_seconds == 5
    assert "1920x1088" in base.sizes and "1280x720" in base.sizes and "960x960" in base.sizes
    assert base.image_roles == ("first_frame", "last_frame", "reference_image")
    # The fast model has no 1080p in the table.
    assert "1920x1088" not in specs[FAST].sizes and "1248x704" in specs[FAST].sizes
    alias = specs["seedance-2.0-landscape-10s"]
    assert (alias.upstream, alias.seconds, alias.sizes) == (MODEL, (10,), ("1280x720",))
    portrait = specs["seedance-2.0-fast-portrait-5s"]
    assert (portrait.upstream, portrait.default_size) == (FAST, "720x1280")
    # No alias for a family the account does not serve.
    assert not any(i.startswith("seedance-2.5-") for i in specs)
    unknown = specs["doubao-seedance-9-9-999999"]
    assert unknown.seconds == tuple(range(2, 16)) and "1920x1088" in unknown.sizes


# --- submit ----------------------------------------------------------------------------------


async def test_submit_maps_every_field_exactly(ark: Ark) -> None:
    sub = Submission(
        model=ark.spec(),
        prompt="a red kite over the sea",
        seconds=10,
        size="1920x1080",
        images=(
            ImageInput(PNG, "image/png", "first_frame"),
            ImageInput(PNG, "image/png", "last_frame"),
        ),
        options={"seed": 7, "watermark": False, "generate_audio": False, "camera_fixed": True},
    )
    task_id = await ark.provider.submit(ark.http, ark.account, sub)
    assert task_id.startswith("cgt-") and task_id in ark.ps.tasks
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    (call,) = ark.sim.calls("POST", TASKS)
    assert call.json == {
        "model": MODEL,
        "content": [
            {"type": "text", "text": "a red kite over the sea"},
            {"type": "image_url", "image_url": {"url": data_url}, "role": "first_frame"},
            {"type": "image_url", "image_url": {"url": data_url}, "role": "last_frame"},
        ],
        "duration": 10,
        "ratio": "16:9",
        "resolution": "1080p",
        "seed": 7,
        "watermark": False,
        "generate_audio": False,
        "camera_fixed": True,
    }
    assert call.headers["authorization"] == f"Bearer {ark.sim_account.key}"


@pytest.mark.parametrize(
    ("size", "ratio", "resolution"),
    [
        ("1280x720", "16:9", "720p"),
        ("720x1280", "9:16", "720p"),
        ("864x480", "16:9", "480p"),
        ("960x960", "1:1", "720p"),
        ("1664x1248", "4:3", "1080p"),
        ("832x1120", "3:4", "720p"),
        ("2176x928", "21:9", "1080p"),
    ],
)
async def test_submit_maps_size_to_ratio_and_resolution(
    ark: Ark, size: str, ratio: str, resolution: str
) -> None:
    await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite", size=size))
    sent = ark.creates()[-1]
    assert (sent["ratio"], sent["resolution"], sent["duration"]) == (ratio, resolution, 5)


async def test_submit_defaults_and_no_nulls(ark: Ark) -> None:
    """Nothing given: the model's defaults, no option keys at all (Ark reads a null as unset)."""
    await ark.provider.submit(
        ark.http, ark.account, Submission(ark.spec(), "kite", options={"seed": None})
    )
    sent = ark.creates()[-1]
    assert sent == {
        "model": MODEL,
        "content": [{"type": "text", "text": "kite"}],
        "duration": 5,
        "ratio": "16:9",
        "resolution": "720p",
    }


async def test_alias_sends_its_upstream_model_seconds_and_shape(ark: Ark) -> None:
    alias = ark.spec("seedance-2.0-fast-portrait-10s")
    img = ImageInput(PNG, "image/jpeg", "reference_image")
    await ark.provider.submit(ark.http, ark.account, Submission(alias, "kite", images=(img,)))
    sent = ark.creates()[-1]
    assert sent["model"] == FAST and sent["duration"] == 10
    assert (sent["ratio"], sent["resolution"]) == ("9:16", "720p")
    assert sent["content"][1]["role"] == "reference_image"
    assert sent["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"seconds": 3}, "seconds must be one of 4, 5, 6"),
        ({"seconds": 16}, "got 16"),
        ({"size": "1024x512"}, "aspect ratios (16:9, 9:16, 1:1, 4:3, 3:4, 21:9)"),
        ({"size": "160x90"}, "not near any of this model's resolutions"),
        ({"size": "big"}, "size must be WIDTHxHEIGHT"),
        ({"images": (ImageInput(PNG, "image/png", "middle_frame"),)}, "'middle_frame'"),
        ({"options": {"seed": "7"}}, "seed must be int"),
        ({"options": {"watermark": 1}}, "watermark must be bool"),
        ({"prompt": ""}, "needs a prompt or an image"),
        ({"remix_of": "cgt-1"}, "cannot remix"),
    ],
)
async def test_submit_refuses_what_the_model_cannot_do_before_sending(
    ark: Ark, change: dict[str, Any], words: str
) -> None:
    sub = replace(Submission(ark.spec(), "kite"), **change)
    failure = await _fails(ark.provider.submit(ark.http, ark.account, sub))
    assert failure.kind is Kind.BAD_REQUEST and not failure.sent
    assert words in failure.message, failure.message
    assert ark.creates() == []  # every Ark request is billed: refused here, never sent


async def test_alias_refuses_another_shape(ark: Ark) -> None:
    sub = Submission(ark.spec("seedance-2.0-landscape-5s"), "kite", size="720x1280")
    failure = await _fails(ark.provider.submit(ark.http, ark.account, sub))
    assert failure.kind is Kind.BAD_REQUEST and "1280x720 only" in failure.message
    assert ark.creates() == []


async def test_fast_model_refuses_1080p_listing_what_it_takes(ark: Ark) -> None:
    sub = Submission(ark.spec(FAST), "kite", size="1920x1080")
    failure = await _fails(ark.provider.submit(ark.http, ark.account, sub))
    assert failure.kind is Kind.BAD_REQUEST and not failure.sent
    assert "resolutions (480p, 720p)" in failure.message and "1280x720" in failure.message
    assert ark.creates() == []


# --- status ----------------------------------------------------------------------------------


async def test_status_through_queued_running_succeeded_with_usage(ark: Ark) -> None:
    task_id = await ark.provider.submit(
        ark.http, ark.account, Submission(ark.spec(), "kite", seconds=8)
    )
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert (st.state, st.stage, st.outputs, st.failure) == ("queued", "queued", (), None)
    ark.run_to(5.0)
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert (st.state, st.stage) == ("running", "running")
    ark.run_to(10_000)
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert st.state == "completed" and st.stage == "succeeded" and len(st.outputs) == 1
    out = st.outputs[0]
    assert out.url and "se=" in out.url and dict(out.headers) == {}  # signed: no key needed
    tokens = 8 * 24 * 4320  # the simulator's figure for 8 s; passed through as Ark gave it
    assert st.usage == {"completion_tokens": tokens, "total_tokens": tokens}
    async with ark.http.get(out.url) as resp:
        assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"
    (get,) = ark.sim.calls("GET", f"{TASKS}/{task_id}")[-1:]
    assert get.headers["authorization"] == f"Bearer {ark.sim_account.key}"


async def test_signed_url_expires_and_a_fresh_poll_signs_again(ark: Ark) -> None:
    await ark.control("/_sim/providers/settings", {"url_ttl": 60})
    task_id = await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    ark.run_to(10_000)
    first = (await ark.provider.status(ark.http, ark.account, task_id)).outputs[0].url
    assert first is not None
    ark.sim.advance(61)
    async with ark.http.get(first) as resp:
        assert resp.status == 403  # why the engine must cache at once
    again = (await ark.provider.status(ark.http, ark.account, task_id)).outputs[0].url
    assert again is not None and again != first
    async with ark.http.get(again) as resp:
        assert resp.status == 200


async def test_status_output_violation_is_content_policy_with_arks_reason(ark: Ark) -> None:
    await ark.control(
        "/_sim/scenario",
        {"outcome": "violation", "email": "ark1", "message": "nope: unsafe frames"},
    )
    task_id = await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    ark.run_to(10_000)
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert st.state == "failed" and st.failure is not None
    assert st.failure.kind is Kind.CONTENT_POLICY and not st.failure.switch_token
    assert st.failure.code == "OutputVideoSensitiveContentDetected"
    assert st.failure.message == "nope: unsafe frames"


async def test_status_failed_task_is_a_server_failure(ark: Ark) -> None:
    await ark.control(
        "/_sim/scenario", {"outcome": "fail", "email": "ark1", "message": "render crashed"}
    )
    task_id = await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    ark.run_to(10_000)
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert st.state == "failed" and st.failure is not None
    assert (st.failure.kind, st.failure.code, st.failure.message) == (
        Kind.SERVER,
        "InternalServiceError",
        "render crashed",
    )


async def test_status_expired_is_failed_with_the_reason(ark: Ark) -> None:
    await ark.control("/_sim/scenario", {"outcome": "success", "email": "ark1", "plateau": True})
    sub = Submission(ark.spec(), "kite", options={"execution_expires_after": 3600})
    task_id = await ark.provider.submit(ark.http, ark.account, sub)
    assert ark.creates()[-1]["execution_expires_after"] == 3600
    ark.sim.advance(ark.sim.settings.scaled(3600) + 1)
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert st.state == "failed" and st.stage == "expired" and st.failure is not None
    assert "expired" in st.failure.message


async def test_cancel_reaches_ark_and_the_task_reads_cancelled(ark: Ark) -> None:
    task_id = await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    await ark.provider.cancel(ark.http, ark.account, task_id)
    (call,) = ark.sim.calls("DELETE", f"{TASKS}/{task_id}")
    assert call.status == 200
    st = await ark.provider.status(ark.http, ark.account, task_id)
    assert (st.state, st.stage) == ("cancelled", "cancelled")
    # A running task cannot be stopped: Ark's refusal comes back classified.
    running = await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    ark.run_to(5.0)
    failure = await _fails(ark.provider.cancel(ark.http, ark.account, running))
    assert failure.kind is Kind.BAD_REQUEST and "cannot be cancelled" in failure.message


async def test_status_of_an_unknown_task_is_not_found(ark: Ark) -> None:
    failure = await _fails(ark.provider.status(ark.http, ark.account, "cgt-nope"))
    assert failure.kind is Kind.NOT_FOUND and failure.code == "ResourceNotFound"


# --- errors ----------------------------------------------------------------------------------


async def test_input_safety_blocks_are_content_policy_never_retried(ark: Ark) -> None:
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "something forbidden"))
    )
    assert failure.kind is Kind.CONTENT_POLICY and not failure.switch_token
    assert failure.code == "InputTextSensitiveContentDetected"
    assert "input text may contain sensitive information" in failure.message
    await ark.fault("InputImageSensitiveContentDetected", message="the first frame shows a face")
    img = ImageInput(PNG, "image/png")
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite", images=(img,)))
    )
    assert (failure.kind, failure.message) == (Kind.CONTENT_POLICY, "the first frame shows a face")
    assert ark.ps.tasks == {}


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        ("AuthenticationError", Kind.TOKEN_INVALID, 401),
        ("RateLimitExceeded", Kind.RATE_LIMITED, 429),
        ("ServerOverloaded", Kind.HEAVY_LOAD, 429),
        ("InvalidParameter", Kind.BAD_REQUEST, 400),
        ("OutputVideoSensitiveContentDetected", Kind.CONTENT_POLICY, 400),
        ("ModelNotOpen", Kind.BAD_REQUEST, 404),
        ("InternalServiceError", Kind.SERVER, 500),
    ],
)
async def test_each_ark_error_code_on_create(ark: Ark, error: str, kind: Kind, status: int) -> None:
    await ark.fault(error, message=f"upstream says {error}")
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    )
    assert (failure.kind, failure.status, failure.code) == (kind, status, error)
    assert failure.message == f"upstream says {error}"
    assert len(ark.creates()) == 1  # exactly one create; the provider never retries


async def test_rate_limit_carries_retry_after(ark: Ark) -> None:
    await ark.fault("RateLimitExceeded", retry_after=17)
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    )
    assert failure.kind is Kind.RATE_LIMITED and failure.retry_after == 17.0
    assert failure.describe().startswith("Rate limited by Seedance (HTTP 429)")
    assert failure.token_reaction == "cooldown" and failure.switch_token


@pytest.mark.parametrize(
    ("code", "status"),
    [("QuotaExceeded", 429), ("AccountOverdueError", 403), ("SetLimitExceeded", 429)],
)
async def test_quota_codes_are_quota_exhausted(ark: Ark, code: str, status: int) -> None:
    envelope = {"error": {"code": code, "message": f"{code}: top up", "param": "", "type": "x"}}
    await ark.raw_fault("custom", status=status, json=envelope)
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    )
    assert (failure.kind, failure.message) == (Kind.QUOTA_EXHAUSTED, f"{code}: top up")


async def test_invalid_parameter_names_the_param(ark: Ark) -> None:
    envelope = {
        "error": {
            "code": "InvalidParameter",
            "message": "bad value",
            "param": "ratio",
            "type": "BadRequest",
        }
    }
    await ark.raw_fault("custom", status=400, json=envelope)
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    )
    assert failure.kind is Kind.BAD_REQUEST and failure.message == "bad value (param: ratio)"


@pytest.mark.parametrize("kind", ["created_500", "created_malformed_json", "created_missing_id"])
async def test_an_uncertain_create_stays_sent_and_is_never_resent(ark: Ark, kind: str) -> None:
    await ark.raw_fault(kind)
    failure = await _fails(
        ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    )
    assert failure.sent and failure.kind in (Kind.SERVER, Kind.MALFORMED)
    assert len(ark.ps.tasks) == 1 and len(ark.creates()) == 1  # it was created upstream


async def test_garbage_answers_are_malformed(ark: Ark) -> None:
    await ark.raw_fault("502_html", method="GET")
    task_id = await ark.provider.submit(ark.http, ark.account, Submission(ark.spec(), "kite"))
    failure = await _fails(ark.provider.status(ark.http, ark.account, task_id))
    assert failure.kind is Kind.SERVER and failure.status == 502
    await ark.raw_fault("custom", method="GET", status=200, json={"status": "dancing"})
    failure = await _fails(ark.provider.status(ark.http, ark.account, task_id))
    assert failure.kind is Kind.MALFORMED and "'dancing'" in failure.message
    await ark.raw_fault("malformed_json", method="GET")
    failure = await _fails(ark.provider.status(ark.http, ark.account, task_id))
    assert failure.kind is Kind.MALFORMED


async def test_unreachable_ark_is_transport_not_sent(ark: Ark, unused_tcp_port: int) -> None:
    gone = replace(ark.account, base_url=f"http://127.0.0.1:{unused_tcp_port}/api/v3")
    failure = await _fails(ark.provider.submit(ark.http, gone, Submission(ark.spec(), "kite")))
    assert failure.kind is Kind.TRANSPORT and not failure.sent


# --- end to end through the app ----------------------------------------------------------------
# The generic provider job flow (sora2api/flows/tasks.py) runs Seedance like any provider.


@dataclass
class App(ProviderApp):
    base: str  # the simulator's Ark base URL

    provider = "seedance"
    creates_path = TASKS

    @property
    def base_url(self) -> str:
        return self.base


@pytest.fixture
async def app(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> App:
    # The simulator runs at 1/100 time: a task queues 0.05 s and runs 0.6 s; poll as fast.
    monkeypatch.setattr(PROVIDER, "poll_interval", 0.05)
    client = await aiohttp_client(create_app(config_for(sim, tmp_path)))
    ps = sim.server.app[PROVIDER_STATE]
    return App(client, sim, ps, sim.url + "/api/v3")


async def test_e2e_wrong_key_at_add_is_a_400_with_arks_reason(app: App) -> None:
    status, body = await app.add("ark-wrong-key")
    assert status == 400, body
    assert "API key or AK/SK in the request is missing or invalid" in body["error"]["message"]
    assert app.sim.state.calls("GET", TASKS)  # it asked Ark
    listed = await app.client.get("/api/tokens", headers=KEY)
    assert "ark-wrong-key" not in await listed.text()


async def test_e2e_videos_with_a_seedance_model_maps_fields_and_creates_once(app: App) -> None:
    await app.add_ok("ark1")
    image = "data:image/png;base64," + base64.b64encode(png((200, 40, 40), 64)).decode()
    video = await app.video(
        model=MODEL, prompt="a red kite", seconds="10", size="1280x720", input_reference=image
    )
    done = await app.wait(video["id"])
    assert done["status"] == "completed", done
    (create,) = app.creates()
    sent = create.json
    assert sent["model"] == MODEL and sent["duration"] == 10
    assert (sent["ratio"], sent["resolution"]) == ("16:9", "720p")
    assert sent["content"][0] == {"type": "text", "text": "a red kite"}
    assert sent["content"][1]["role"] == "first_frame"
    assert sent["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert not any(v is None for v in sent.values())
    status, data = await app.content(video["id"])
    assert status == 200 and data[4:8] == b"ftyp"


async def test_e2e_refuses_what_the_model_cannot_do_without_a_create(app: App) -> None:
    await app.add_ok("ark1")
    resp = await app.client.post(
        "/v1/videos", json={"model": FAST, "prompt": "x", "size": "1920x1080"}, headers=KEY
    )
    err = (await resp.json())["error"]
    assert resp.status == 400 and "1280x720" in err["message"], err
    assert app.creates() == []


async def test_e2e_chat_with_an_alias(app: App) -> None:
    await app.add_ok("ark1")
    body = {
        "model": "seedance-2.0-portrait-5s",
        "messages": [{"role": "user", "content": "a kite"}],
        "stream": True,
    }
    resp = await app.client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200
    text = await resp.text()
    assert "[DONE]" in text and "/tmp/" in text, text[-500:]
    (create,) = app.creates()
    assert create.json["model"] == MODEL and create.json["duration"] == 5
    assert (create.json["ratio"], create.json["resolution"]) == ("9:16", "720p")


async def test_e2e_cached_bytes_outlive_the_signed_link(app: App) -> None:
    app.ps.settings.url_ttl = 60
    await app.add_ok("ark1")
    video = await app.video(model=MODEL, prompt="kite")
    assert (await app.wait(video["id"]))["status"] == "completed"
    fetched = len(app.sim.state.calls("GET", "/media/*"))
    app.sim.state.advance(61)  # Ark's link is dead now
    status, data = await app.content(video["id"])
    assert status == 200 and data[4:8] == b"ftyp"
    assert len(app.sim.state.calls("GET", "/media/*")) == fetched  # served from our cache


@pytest.mark.parametrize("where", ["input", "output"])
async def test_e2e_safety_block_fails_once_without_switching(app: App, where: str) -> None:
    await app.add_ok("ark1")
    await app.add_ok("ark2")
    prompt = "kite"
    if where == "input":
        prompt = "something forbidden"
    else:
        app.sim.state.scenario(outcome="violation", message="unsafe frames")
    done = await app.wait((await app.video(model=MODEL, prompt=prompt))["id"])
    assert done["status"] == "failed", done
    reason = "sensitive information" if where == "input" else "unsafe frames"
    assert reason in str(done["error"]), done
    assert len(app.creates()) == 1  # content policy is never retried on another key


async def test_e2e_rate_limit_fails_over_to_the_second_key(app: App) -> None:
    await app.add_ok("ark1")
    await app.add_ok("ark2")
    app.sim.state.inject(
        "POST",
        TASKS,
        "custom",
        status=429,
        json={
            "error": {
                "code": "RateLimitExceeded",
                "message": "slow down",
                "param": "",
                "type": "TooManyRequests",
            }
        },
        headers={"Retry-After": "30"},
    )
    done = await app.wait((await app.video(model=MODEL, prompt="kite"))["id"])
    assert done["status"] == "completed", done
    first, second = app.creates()
    assert (first.status, second.status) == (429, 200)
    assert first.headers["authorization"] != second.headers["authorization"]
    tokens = await (await app.client.get("/api/tokens", headers=KEY)).text()
    assert "cool" in tokens.lower()


async def test_e2e_cancel_reaches_ark(app: App) -> None:
    await app.add_ok("ark1")
    app.ps.settings.queue_seconds = 10_000  # stays queued: Ark cancels only queued tasks
    video = await app.video(model=MODEL, prompt="kite")
    await until(lambda: bool(app.creates()))
    task_id = next(iter(app.ps.tasks))
    async with asyncio.timeout(30):
        while True:
            resp = await app.client.get(f"/v1/videos/{video['id']}", headers=KEY)
            if (await resp.json())["status"] == "in_progress":
                break
            await asyncio.sleep(0.02)
    headers = await admin_headers(app.client)
    resp = await app.client.post(f"/api/jobs/{video['id']}/cancel", headers=headers)
    assert resp.status == 200, await resp.text()
    await until(lambda: bool(app.sim.state.calls("DELETE", f"{TASKS}/{task_id}")))
    assert app.ps.tasks[task_id].cancelled_at is not None


async def test_e2e_restart_mid_job_resumes_without_a_second_create(
    sim: Sim,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(PROVIDER, "poll_interval", 0.05)
    ps = sim.server.app[PROVIDER_STATE]
    ps.settings.run_seconds = 300  # 3 s at the simulator's scale: time to stop mid-job
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    first = App(client, sim, ps, sim.url + "/api/v3")
    await first.add_ok("ark1")
    video = await first.video(model=MODEL, prompt="survive")
    await until(lambda: bool(first.creates()))
    await client.close()
    second = App(await aiohttp_client(create_app(config)), sim, ps, sim.url + "/api/v3")
    done = await second.wait(video["id"])
    assert done["status"] == "completed", done
    assert len(second.creates()) == 1
    status, data = await second.content(video["id"])
    assert status == 200 and data[4:8] == b"ftyp"
