"""The Gemini Omni provider against the Gemini simulator, compared with google-genai's wire form."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import types

from sora2api.providers.base import Account, ImageInput, Submission
from sora2api.providers.gemini import GeminiProvider
from sora2api.providers.gemini.models import OMNI, specs_for
from sora2api.simulator import SIM_STATE, SimState, create_simulator, png
from sora2api.simulator.media import DEFAULT_MP4_BYTES, Mp4
from sora2api.simulator.providers import PROVIDER_STATE, ProviderAccount, ProviderState
from sora2api.upstream.errors import Kind, UpstreamFailure

SPECS = {s.id: s for s in specs_for(OMNI)}


def _read(path: str) -> bytes:
    """A file's bytes (sync: a test's few MB)."""
    return Path(path).read_bytes()


def _listing(folder: Path) -> list[Path]:
    return list(folder.iterdir())


@dataclass
class Omni:
    server: TestServer
    sim: SimState
    ps: ProviderState
    sim_account: ProviderAccount
    account: Account
    http: aiohttp.ClientSession
    provider: GeminiProvider

    def url(self, path: str = "") -> str:
        return str(self.server.make_url(path))

    async def control(self, path: str, body: Any) -> Any:
        async with self.http.post(self.url(path), json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    def creates(self) -> list[Any]:
        return self.sim.calls("POST", "/v1*/interactions")

    def video_bytes(self, task_id: str) -> bytes:
        spec = self.sim.media[task_id]
        return Mp4(
            size=spec.size or DEFAULT_MP4_BYTES,
            seed=f"{task_id}/video",
            duration_ms=spec.duration_ms,
            width=spec.width,
            height=spec.height,
        ).to_bytes()


def sub(model: str = OMNI, prompt: str = "a paper boat in the rain", **kw: Any) -> Submission:
    return Submission(model=SPECS[model], prompt=prompt, **kw)


@pytest.fixture
async def omni(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Omni]:
    app = create_simulator(time_scale=1.0, seed=7)
    server = await aiohttp_server(app)
    ps = app[PROVIDER_STATE]
    sim_account = ps.add_account("gemini", name="g1")
    account = Account(1, "gemini", sim_account.key, str(server.make_url("")))
    provider = GeminiProvider(staging_dir=tmp_path, request_timeout=30.0)
    async with aiohttp.ClientSession() as http:
        yield Omni(server, app[SIM_STATE], ps, sim_account, account, http, provider)


async def test_onboard_lists_the_omni_models_without_creating_anything(omni: Omni) -> None:
    info = await omni.provider.onboard(omni.http, omni.account)
    assert info.models == (OMNI,)
    listed = omni.sim.calls("GET", "/v1/models")[-1]
    assert listed.headers["x-goog-api-key"] == omni.account.key
    assert omni.creates() == [] and omni.ps.tasks == {}


async def test_onboard_refuses_a_wrong_or_suspended_key(omni: Omni) -> None:
    wrong = Account(2, "gemini", "AIza-wrong", omni.account.base_url)
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.onboard(omni.http, wrong)
    assert err.value.kind is Kind.TOKEN_INVALID and err.value.status == 400
    assert "API key not valid" in err.value.message
    suspended = omni.ps.add_account("gemini", name="g2", suspended=True)
    denied = Account(3, "gemini", suspended.key, omni.account.base_url)
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.onboard(omni.http, denied)
    assert err.value.kind is Kind.TOKEN_INVALID and err.value.status == 403
    assert "suspended" in err.value.message
    assert omni.creates() == []


async def test_submit_sends_the_sdk_wire_form(omni: Omni) -> None:
    task_id = await omni.provider.submit(omni.http, omni.account, sub(seconds=6, size="720x1280"))
    sent = omni.creates()[-1]
    assert sent.path == "/v1/interactions" and sent.headers["x-goog-api-key"] == omni.account.key
    assert sent.json == {
        "model": OMNI,
        "input": "a paper boat in the rain",
        "background": True,
        "response_format": {
            "type": "video",
            "aspect_ratio": "9:16",
            "resolution": "720p",
            "duration": "6",
        },
    }
    assert omni.ps.tasks[task_id].params["response_format"]["duration"] == "6"
    # Defaults and an alias: 10 s, 16:9 at 720p; a 1080p portrait alias with a size of its own.
    await omni.provider.submit(omni.http, omni.account, sub())
    fmt = omni.creates()[-1].json["response_format"]
    assert (fmt["aspect_ratio"], fmt["resolution"], fmt["duration"]) == ("16:9", "720p", "10")
    await omni.provider.submit(
        omni.http, omni.account, sub("gemini-omni-portrait-8s", size="1080x1920")
    )
    fmt = omni.creates()[-1].json["response_format"]
    assert (fmt["aspect_ratio"], fmt["resolution"], fmt["duration"]) == ("9:16", "1080p", "8")


async def test_image_to_video_matches_google_genai(omni: Omni) -> None:
    image = png((9, 8, 7))
    await omni.provider.submit(
        omni.http,
        omni.account,
        sub(prompt="make it move", images=(ImageInput(image, "image/png"),), seconds=4),
    )
    ours = omni.creates()[-1].json
    parts: Any = [
        {"type": "text", "text": "make it move"},
        {"type": "image", "data": base64.b64encode(image).decode(), "mime_type": "image/png"},
    ]
    options = types.HttpOptions(
        base_url=omni.url(""), retry_options=types.HttpRetryOptions(attempts=1)
    )
    async with genai.Client(api_key=omni.account.key, http_options=options).aio as client:
        await client.interactions.create(
            model=OMNI, input=parts, background=True, response_format=ours["response_format"]
        )
    theirs = omni.creates()[-1].json
    assert ours["input"] == theirs["input"]
    assert ours["input"][0]["content"][1]["data"] == parts[1]["data"]
    assert ours["generation_config"] == {"video_config": {"task": "image_to_video"}}
    assert [t.params["images"] for t in omni.ps.tasks.values()] == [1, 1]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"size": "1024x1024"}, ["1024x1024", "1280x720", "720x1280"]),
        ({"seconds": 12}, ["12", "3, 4, 5, 6, 7, 8, 9, 10"]),
        ({"model": "gemini-omni-landscape-8s", "size": "720x1280"}, ["1280x720", "1920x1080"]),
        ({"model": "gemini-omni-landscape-8s", "seconds": 10}, ["one of 8"]),
        ({"images": (ImageInput(b"x", "image/svg+xml"),)}, ["image/svg+xml", "image/png"]),
        ({"prompt": "  "}, ["prompt"]),
        ({"options": {"seed": "x"}}, ["seed"]),
    ],
)
async def test_refused_before_anything_is_sent(
    omni: Omni, change: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.submit(omni.http, omni.account, sub(**change))
    assert err.value.kind is Kind.BAD_REQUEST and err.value.sent is False
    assert all(w in err.value.message for w in words), err.value.message
    assert omni.creates() == []  # every create is billed: nothing went out


async def test_status_running_then_inline_video_streamed_to_a_file(omni: Omni) -> None:
    task_id = await omni.provider.submit(omni.http, omni.account, sub(seconds=5))
    running = await omni.provider.status(omni.http, omni.account, task_id)
    assert (running.state, running.stage) == ("running", "in_progress")
    polled = omni.sim.calls("GET", f"/v1/interactions/{task_id}")[-1]
    assert polled.query == {"stream": "false"}
    omni.sim.advance(10_000)
    done = await omni.provider.status(omni.http, omni.account, task_id)
    assert done.state == "completed" and done.usage == {
        "total_output_tokens": 5000,
        "total_tokens": 5000,
    }
    (video,) = done.outputs
    assert video.url is None and video.path is not None and video.content_type == "video/mp4"
    assert Path(video.path).parent == omni.provider.staging_dir
    assert _read(video.path) == omni.video_bytes(task_id)


async def test_uri_output_carries_the_key_for_the_api_host_only(omni: Omni) -> None:
    await omni.control("/_sim/providers/settings", {"gemini_delivery": "uri"})
    task_id = await omni.provider.submit(omni.http, omni.account, sub())
    omni.sim.advance(10_000)
    done = await omni.provider.status(omni.http, omni.account, task_id)
    (video,) = done.outputs
    assert video.path is None and video.url and "/files/" in video.url
    assert dict(video.headers) == {"x-goog-api-key": omni.account.key}
    async with omni.http.get(video.url, headers=video.headers) as resp:
        assert resp.status == 200 and await resp.read() == omni.video_bytes(task_id)
    assert omni.provider.staging_dir is not None and _listing(omni.provider.staging_dir) == []
    # A video link on another host never gets the key.
    headers = GeminiProvider._uri_headers(omni.account, "https://cdn.example/files/x:download")
    assert headers == {}


async def test_safety_blocks_on_input_and_output_are_content_policy(omni: Omni) -> None:
    blocked_in = await omni.provider.submit(omni.http, omni.account, sub(prompt="forbidden art"))
    got = await omni.provider.status(omni.http, omni.account, blocked_in)
    assert got.state == "failed" and got.failure is not None
    assert got.failure.kind is Kind.CONTENT_POLICY and not got.failure.switch_token
    assert "blocked by safety filters" in got.failure.message

    await omni.control("/_sim/scenario", {"outcome": "violation", "email": "g1"})
    blocked_out = await omni.provider.submit(omni.http, omni.account, sub())
    await omni.control("/_sim/scenario", {"outcome": "fail", "email": "g1", "message": "boom"})
    failed = await omni.provider.submit(omni.http, omni.account, sub())
    omni.sim.advance(10_000)
    got = await omni.provider.status(omni.http, omni.account, blocked_out)
    assert got.failure is not None and got.failure.kind is Kind.CONTENT_POLICY
    assert got.failure.code == "SAFETY" and got.outputs == ()
    got = await omni.provider.status(omni.http, omni.account, failed)
    assert got.failure is not None and got.failure.kind is Kind.SERVER
    assert got.failure.message == "boom"
    await omni.control("/_sim/providers/settings", {"gemini_block_status": "incomplete"})
    got = await omni.provider.status(omni.http, omni.account, blocked_out)
    assert (got.state, got.stage) == ("failed", "incomplete")
    assert got.failure is not None and got.failure.kind is Kind.CONTENT_POLICY


async def test_rate_limit_waits_exactly_the_retry_delay(omni: Omni) -> None:
    fault = {"provider": "gemini", "error": "RESOURCE_EXHAUSTED", "token": omni.account.key}
    await omni.control("/_sim/providers/faults", {**fault, "retry_delay": "1.5s"})
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.submit(omni.http, omni.account, sub())
    assert err.value.kind is Kind.RATE_LIMITED and err.value.retry_after == 1.5
    assert err.value.status == 429 and "exceeded your current quota" in err.value.message
    assert [c.status for c in omni.creates()] == [429] and omni.ps.tasks == {}

    await omni.control("/_sim/providers/faults", {**fault, "daily": True, "retry_delay": "12s"})
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.submit(omni.http, omni.account, sub())
    assert err.value.kind is Kind.QUOTA_EXHAUSTED
    # Until midnight Pacific (within a day), never shorter than Google's own hint.
    assert err.value.retry_after is not None and 12 <= err.value.retry_after <= 25 * 3600


async def test_other_upstream_errors(omni: Omni) -> None:
    for error, kind in (
        ("INVALID_ARGUMENT", Kind.BAD_REQUEST),
        ("UNAVAILABLE", Kind.SERVER),
        ("PERMISSION_DENIED", Kind.TOKEN_INVALID),
    ):
        await omni.control("/_sim/providers/faults", {"provider": "gemini", "error": error})
        with pytest.raises(UpstreamFailure) as err:
            await omni.provider.submit(omni.http, omni.account, sub())
        assert err.value.kind is kind, error
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.status(omni.http, omni.account, "v1_nothing")
    assert err.value.kind is Kind.NOT_FOUND
    gone = Account(1, "gemini", omni.account.key, "http://127.0.0.1:9")
    with pytest.raises(UpstreamFailure) as err:
        await omni.provider.submit(omni.http, gone, sub())
    assert err.value.kind is Kind.TRANSPORT and err.value.sent is False


async def test_cancel(omni: Omni) -> None:
    task_id = await omni.provider.submit(omni.http, omni.account, sub())
    await omni.provider.cancel(omni.http, omni.account, task_id)
    assert omni.sim.calls("POST", f"/v1/interactions/{task_id}/cancel")[0].status == 200
    got = await omni.provider.status(omni.http, omni.account, task_id)
    assert (got.state, got.stage) == ("cancelled", "cancelled")
    with pytest.raises(UpstreamFailure) as err:  # no longer in progress
        await omni.provider.cancel(omni.http, omni.account, task_id)
    assert err.value.kind is Kind.BAD_REQUEST


def test_models_and_aliases() -> None:
    provider = GeminiProvider()
    ids = [m.id for m in provider.models((OMNI, "gemini-2.5-pro"))]
    assert (
        ids[0] == OMNI and "gemini-omni-landscape-10s" in ids and "gemini-omni-portrait-8s" in ids
    )
    omni = SPECS[OMNI]
    assert omni.seconds == tuple(range(3, 11)) and omni.default_seconds == 10
    assert omni.default_size == "1280x720" and omni.image_input
    alias = SPECS["gemini-omni-portrait-8s"]
    assert alias.seconds == (8,) and alias.default_size == "720x1280" and alias.upstream == OMNI


def test_classify_garbage_html_and_durations() -> None:
    from datetime import UTC, datetime

    from sora2api.providers.gemini.errors import classify, retry_delay, seconds_to_daily_reset

    assert classify(200, b"not json", "GET /x").kind is Kind.MALFORMED
    assert classify(400, b"<html>bad gateway</html>", "GET /x").kind is Kind.MALFORMED
    assert classify(502, b"<html>bad gateway</html>", "GET /x").kind is Kind.SERVER
    envelope = b'[{"error": {"code": 400, "message": "User location is not supported for the API use.", "status": "FAILED_PRECONDITION"}}]'
    assert classify(400, envelope, "POST /interactions").kind is Kind.COUNTRY
    assert [retry_delay(t) for t in ("12s", "1.5s", "0.000000001s", "12", "1m", None)] == [
        12.0,
        1.5,
        1e-9,
        None,
        None,
        None,
    ]
    # 23:00 PST is an hour before the reset; 23:00 PDT the night before DST ends too.
    assert seconds_to_daily_reset(datetime(2026, 12, 1, 7, 0, tzinfo=UTC)) == 3600
    assert seconds_to_daily_reset(datetime(2026, 11, 1, 6, 0, tzinfo=UTC)) == 3600
    # 00:30 PDT on the day DST ends: that day is 25 hours long.
    assert seconds_to_daily_reset(datetime(2026, 11, 1, 7, 30, tzinfo=UTC)) == 24.5 * 3600
