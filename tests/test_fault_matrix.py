"""Every simulator fault kind x every upstream call a job makes. Each case ends, within a bound,
in a clear error or in a result (on another token where the first one failed); a create that may
have reached Sora is never sent twice; a rate limit, heavy load or Cloudflare page never leaves a
token disabled or invalid."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api.simulator import png
from sora2api.simulator.faults import FAULT_KINDS

from .conftest import KEY, Sim
from .helpers import add_token, chat, data_url, read_sse

BOUND = 30.0  # seconds per case; a bound on a loaded machine, never an expectation


@dataclass(frozen=True, slots=True)
class Call:
    """One upstream call of a job: where the fault goes and the chat request that makes it."""

    name: str
    method: str
    path: str
    kind: str  # image | video
    upload: bool = False


CALLS = (
    Call("create_image", "POST", "/backend/video_gen", "image"),
    Call("create_video", "POST", "/backend/nf/create", "video"),
    Call("upload", "POST", "/backend/uploads", "image", upload=True),
    Call("poll_recent_tasks", "GET", "/backend/v2/recent_tasks", "image"),
    Call("poll_pending", "GET", "/backend/nf/pending/v2", "video"),
    Call("poll_drafts", "GET", "/backend/project_y/profile/drafts", "video"),
    Call("media_image", "GET", "/media/*", "image"),
    Call("media_video", "GET", "/media/*.mp4", "video"),
    Call("media_thumbnail", "GET", "/media/*/thumb*", "video"),
)
CREATES = ("/backend/video_gen", "/backend/nf/create")
# Kinds that say nothing about the account: they must never disable or invalidate a token.
TRANSIENT_FOR_TOKEN = {"429", "429_concurrency", "heavy_load", "heavy_load_503", "403_cloudflare"}
# The account itself is refused: the token is marked, the job moves on.
TOKEN_REFUSED = {"401_invalidated", "401_expired", "401_unparseable"}
# Answers to a create that do not prove the task was not made: resending could spend twice.
CREATE_MAYBE_MADE = {"500", "502_html", "503_empty", "custom", "malformed_json", "empty_200"}
CREATE_MAYBE_MADE |= {"missing_id", "hang", "reset"}
# Poll answers that say nothing about the task: a spell of them longer than today's error limit.
POLL_SPELL = 6
# What a poll may end a job on: the account itself is refused (invalid, expired, region-blocked).
POLL_TOKEN_VERDICT = TOKEN_REFUSED | {"403_country"}
# Poll faults a job survives today: connection trouble is retried, media kinds never fire.
POLL_SURVIVED_TODAY = {"hang", "reset", "slow_first_byte", "disconnect", "length_mismatch"}
# A media body that is not the file it claims to be.
MEDIA_NOT_A_FILE = {"empty_200", "malformed_json", "missing_id"}


def _ignored_by(call: Call) -> set[str]:
    """Kinds a call never sees fire: media kinds outside a file download."""
    return set() if call.name.startswith("media") else {"disconnect", "length_mismatch"}


CASES = [
    pytest.param(call, kind, id=f"{call.name}-{kind}")
    for call in CALLS
    for kind in sorted(FAULT_KINDS)
]


def _request(call: Call) -> dict[str, Any]:
    if call.upload:
        image = {"type": "image_url", "image_url": {"url": data_url(png((9, 9, 9)), "image/png")}}
        return chat("sora-image", [{"type": "text", "text": "a cat"}, image], stream=True)
    model = "sora-image" if call.kind == "image" else "sora-video-10s"
    return chat(model, "a cat", stream=True)


def _fault_params(call: Call, kind: str) -> dict[str, Any]:
    times = POLL_SPELL if call.name.startswith("poll") else 1
    params: dict[str, Any] = {"times": times}
    if kind == "slow_first_byte":
        params["seconds"] = 0.3  # slow, but inside the request timeout
    if kind == "hang":
        params["seconds"] = 3.0  # beyond the request timeout; the simulator lets go after it
        params["times"] = min(times, 2)
    return params


IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")


async def _assert_served_files_are_real(
    client: TestClient, call: Call, result: dict[str, Any], job_id: str
) -> None:
    """Every file a completed job serves is the kind it claims (magic bytes), thumbnail too."""
    urls = result.get("urls") or [result["url"]]
    for url in urls:
        resp = await client.get("/tmp/" + url.rsplit("/tmp/", 1)[1])
        body = await resp.read()
        assert resp.status == 200
        if call.kind == "image":
            assert body.startswith(IMAGE_MAGIC), body[:40]
        else:
            assert body[4:8] == b"ftyp", body[:40]
    if call.kind == "video":
        resp = await client.get(f"/v1/videos/{job_id}/content?variant=thumbnail", headers=KEY)
        body = await resp.read()
        # A thumbnail that failed to download is left out today (404; reported, not fixed
        # here); one that is served must be an image.
        assert resp.status == 404 or body.startswith(IMAGE_MAGIC), (resp.status, body[:40])


async def _tokens(client: TestClient) -> list[dict[str, Any]]:
    return list((await (await client.get("/api/tokens", headers=KEY)).json())["data"])


@pytest.mark.parametrize(("call", "kind"), CASES)
async def test_fault_matrix(make_client, sim: Sim, call: Call, kind: str) -> None:
    client = await make_client(
        upstream={"request_timeout": 1.0, "poll_interval": 0.05},
        # Cooldowns (and any poll back-off built on them) in tenths of a second, so a spell of
        # rate limits is waited out inside the bound.
        pool={"cooldown_base": 0.05, "cooldown_max": 0.5},
    )
    # A few polls per task at the fixture's time scale: 30 ms images, 70 ms videos.
    sim.state.settings.image_seconds = 3
    sim.state.settings.video_seconds = 5
    sim.state.settings.video_queue_seconds = 2
    for _ in range(2):
        await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    sim.state.inject(call.method, call.path, kind, **_fault_params(call, kind))

    async with asyncio.timeout(BOUND):
        resp = await client.post("/v1/chat/completions", json=_request(call), headers=KEY)
        assert resp.status == 200, await resp.text()
        frames, _ = await read_sse(resp)
    job_id = frames[0]["job_id"]
    errors = [f["error"] for f in frames if "error" in f]
    api = "images" if call.kind == "image" else "videos"
    job = await (await client.get(f"/v1/{api}/{job_id}", headers=KEY)).json()
    fired = [e for e in sim.state.journal if e.fault == kind]
    if kind not in _ignored_by(call):
        assert fired, f"the {kind} fault never fired on {call.path}"

    if errors:  # a clear error: named, classified, and the job says the same
        (error,) = errors
        assert error["message"].strip() and error["message"] != "Internal server error"
        assert error["code"] not in (None, "internal_error"), error
        assert job["status"] == "failed" and job["error"]["message"], job
    else:
        final = [f for f in frames if f["choices"][0]["finish_reason"]][-1]
        result = orjson.loads(final["choices"][0]["delta"]["content"])
        assert result["type"] == call.kind, result
        assert job["status"] == "completed", job
        await _assert_served_files_are_real(client, call, result, job_id)

    creates = [e for path in CREATES for e in sim.state.calls("POST", path)]
    if call.name.startswith("create") and kind in CREATE_MAYBE_MADE:
        assert len(creates) == 1, f"a create answered {kind} was sent {len(creates)} times"
    assert len(creates) <= 2  # at most once per token
    if len(creates) == 2:  # the retry went to the other token, never the one that failed
        assert creates[0].account_email != creates[1].account_email
    if call.name.startswith("create") and kind in TRANSIENT_FOR_TOKEN | TOKEN_REFUSED:
        # Refused before any task was made: the job is the other token's to finish.
        assert not errors and len(creates) == 2, (errors, len(creates))

    tokens = await _tokens(client)
    assert all(t["busy"] == {"image": 0, "video": 0} for t in tokens), tokens
    if kind in TRANSIENT_FOR_TOKEN:
        assert [t["status"] for t in tokens] == ["active", "active"], tokens
    if call.name.startswith("poll") and kind not in POLL_TOKEN_VERDICT:
        assert not errors, f"a spell of {POLL_SPELL} {kind} poll answers failed the job: {errors}"
