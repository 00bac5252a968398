"""Every simulator fault kind x every upstream call a job makes. Each case ends, within a bound,
in a clear error or in a result (on another token where the first one failed); a create that may
have reached Sora is never sent twice; a rate limit, heavy load or Cloudflare page never leaves a
token disabled or invalid."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sora2api.app import create_app
from sora2api.simulator import SIM_STATE, create_simulator, png
from sora2api.simulator.faults import CREATED_KINDS, CREATED_PREFIX, FAULT_KINDS, MEDIA_KINDS

from .conftest import KEY, Sim, config_for
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
CREATE_MAYBE_MADE |= {"missing_id", "hang", "reset"} | CREATED_KINDS
# Poll answers that say nothing about the task: a spell of them longer than today's error limit.
POLL_SPELL = 6
# What a poll may end a job on: the account itself is refused (invalid, expired, region-blocked).
POLL_TOKEN_VERDICT = TOKEN_REFUSED | {"403_country"}


def _ignored_by(call: Call) -> set[str]:
    """Kinds a call never sees fire: media kinds outside a file download."""
    return set() if call.name.startswith("media") else {"disconnect", "length_mismatch"}


def _skipped(call: Call, kind: str) -> str | None:
    """Why a (call, kind) pair is left out of the matrix, or None when it runs."""
    # The simulator applies a media kind only inside its file handlers (middleware hands it
    # to the handler, which any other route ignores): on a create, upload or list poll it is
    # a plain success, which every other case of that call already covers.
    if kind in MEDIA_ONLY and not call.name.startswith("media"):
        return "media-only kind on a non-media call: the handler ignores it"
    # A created_* kind runs the handler, then answers the plain kind. A GET list poll or media
    # download changes nothing upstream, so the client sees exactly the plain kind's case.
    if kind.startswith(CREATED_PREFIX) and call.method == "GET":
        return "created_* on a GET is the plain kind: nothing is created"
    return None


# Handled by the media handlers alone, beyond the two the original matrix already ran everywhere.
MEDIA_ONLY = MEDIA_KINDS - {"disconnect", "length_mismatch"}
KINDS = sorted(FAULT_KINDS)


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
    if kind in ("hang", "created_hang"):
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


# Cases of one call run at once, each against its own simulator and its own app (own database,
# own tokens), so nothing is shared but the event loop; the semaphore keeps a loaded 2-core
# machine's loop responsive well inside the request timeout.
CONCURRENCY = 6
COOLDOWN_MAX = 0.1


@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
async def test_fault_matrix(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    tmp_path: Path,
    call: Call,
) -> None:
    kinds = [k for k in KINDS if _skipped(call, k) is None]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(kind: str) -> None:
        async with gate:
            server = await aiohttp_server(create_simulator(time_scale=0.01))
            sim = Sim(server, server.app[SIM_STATE])
            config = config_for(
                sim,
                tmp_path / kind,
                upstream={"request_timeout": 2.0, "poll_interval": 0.05},
                # Cooldowns, and the poll back-off they cap, in tenths of a second, so a spell
                # of rate limits is waited out inside the bound.
                pool={"cooldown_base": 0.05, "cooldown_max": COOLDOWN_MAX},
            )
            client = await aiohttp_client(create_app(config))
            await _case(client, sim, call, kind)

    results = await asyncio.gather(*(one(k) for k in kinds), return_exceptions=True)
    failed = {k: r for k, r in zip(kinds, results, strict=True) if isinstance(r, BaseException)}
    assert not failed, "\n".join(f"{call.name}-{k}: {r!r}" for k, r in failed.items())
    # The README's reliability figures come from this line (pytest -s).
    print(f"\nfault matrix {call.name}: {len(kinds)} fault kinds, {len(failed)} failed")


async def _case(client: TestClient, sim: Sim, call: Call, kind: str) -> None:
    """One fault on one call: the job ends within the bound as the issue's rules say."""
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
        # The stream said polling was delayed, and the back-off stayed within the pool's
        # cooldown cap (the matrix's cooldown_max) rather than growing to a minute.
        retry_in = [float(x) for x in re.findall(rb'"retry_in":([0-9.e+-]+)', orjson.dumps(frames))]
        assert all(r <= COOLDOWN_MAX for r in retry_in), retry_in
        # Every kind but a slow answer and the media-only ones fails a poll, which shows.
        assert retry_in or kind in {"slow_first_byte"} | _ignored_by(call), kind
    if call.name.startswith("create") and kind in CREATED_KINDS:
        # The task was made and only its answer lost: reconciliation finds and adopts it.
        assert not errors and len(creates) == 1, (errors, len(creates))


def test_matrix_covers_every_kind_on_some_call() -> None:
    """The skip rules leave every fault kind running somewhere and every call with its faults."""
    run = {(c.name, k) for c in CALLS for k in KINDS if _skipped(c, k) is None}
    assert {k for _, k in run} == FAULT_KINDS
    assert {c for c, _ in run} == {c.name for c in CALLS}
    # created_* kinds run on every create and the upload; media-only kinds on every download.
    for c in CALLS:
        if c.method == "POST":
            assert {(c.name, k) for k in FAULT_KINDS if k.startswith(CREATED_PREFIX)} <= run
        if c.name.startswith("media"):
            assert {(c.name, k) for k in MEDIA_KINDS} <= run
