"""The simulator's accounts, tokens and task state machines, driven over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sora2api.simulator import SIM_STATE, create_simulator, mp4_bytes, png
from sora2api.simulator.jwt import decode

from .sim_helpers import SENTINEL, Sim, file_form, image_body, video_body

ClientMaker = Callable[..., Awaitable[TestClient]]
INVALIDATED = "Your authentication token has been invalidated. Please try signing in again."
UNPARSEABLE = "Could not parse your authentication token. Please try signing in again."


@pytest.fixture
async def fake(aiohttp_client: ClientMaker) -> Sim:
    app = create_simulator(time_scale=0.01, seed=7)
    state = app[SIM_STATE]
    client = await aiohttp_client(app)
    return Sim(client, state, state.add_account("alice@example.com"))


def envelope_code(body: Any) -> Any:
    assert set(body) == {"error", "status"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]["code"]


# -- tokens and accounts ---------------------------------------------------------------------


async def test_access_token_is_a_jwt_with_the_openai_claims(fake: Sim) -> None:
    claims = decode(fake.account.access_token)
    assert claims["https://api.openai.com/profile"]["email"] == "alice@example.com"
    assert claims["https://api.openai.com/auth"]["user_id"] == fake.account.user_id
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 5
    assert decode(fake.account.access_token, fake.state.secret) == claims
    assert fake.state.account_for_token(fake.account.access_token) is fake.account
    assert fake.account.user_id.startswith("user-") and len(fake.account.user_id) == 29


async def test_me_billing_and_token_states(fake: Sim) -> None:
    status, me = await fake.get("/backend/me")
    assert status == 200
    assert (me["email"], me["name"], me["username"]) == (
        "alice@example.com",
        "Alice",
        fake.account.username,
    )
    status, billing = await fake.get("/backend/billing/subscriptions")
    assert status == 200
    plan = billing["data"][0]
    assert plan["plan"] == {"id": "chatgpt_plus", "title": "ChatGPT Plus"}
    assert plan["end_ts"].endswith("Z")

    nameless = fake.state.add_account("nameless@example.com", username=None, plan="free")
    assert (await fake.get("/backend/me", nameless))[1]["username"] is None
    assert (await fake.get("/backend/billing/subscriptions", nameless))[1] == {"data": []}

    expired = fake.state.mint_access_token(fake.account, ttl=-5)
    async with fake.client.get("/backend/me", headers={"Authorization": f"Bearer {expired}"}) as r:
        body = await r.json()
        assert r.status == 401 and envelope_code(body) == "token_expired"
    async with fake.client.get("/backend/me", headers={"Authorization": "Bearer garbage"}) as r:
        body = await r.json()
        assert r.status == 401 and body["error"]["message"] == UNPARSEABLE
    fake.state.invalidate(fake.account)
    status, body = await fake.get("/backend/me")
    assert status == 401 and envelope_code(body) == "token_invalidated"
    assert body == {
        "error": {
            "message": INVALIDATED,
            "type": "invalid_request_error",
            "param": None,
            "code": "token_invalidated",
        },
        "status": 401,
    }


async def test_sora2_activation_via_bootstrap_and_invite(fake: Sim) -> None:
    new = fake.state.add_account("new@example.com", sora2=False)
    status, body = await fake.get("/backend/project_y/invite/mine", new)
    assert status == 401 and body["error"]["message"] == "Unauthorized"
    status, _ = await fake.post("/backend/nf/create", video_body(), new, sentinel=True)
    assert status == 401
    fake.state.settings.bootstrap_activates = False
    assert (await fake.get("/backend/m/bootstrap", new))[0] == 200
    assert (await fake.get("/backend/project_y/invite/mine", new))[0] == 401
    fake.state.settings.bootstrap_activates = True
    assert (await fake.get("/backend/m/bootstrap", new))[0] == 200
    status, invite = await fake.get("/backend/project_y/invite/mine", new)
    assert status == 200
    assert invite == {"invite_code": new.invite_code, "redeemed_count": 0, "total_count": 4}

    third = fake.state.add_account("third@example.com", sora2=False)
    status, body = await fake.post(
        "/backend/project_y/invite/accept", {"invite_code": "NOPE"}, third
    )
    assert status == 400
    code = {"invite_code": fake.account.invite_code}
    status, body = await fake.post("/backend/project_y/invite/accept", code, third)
    assert (status, body) == (200, {"success": True, "already_accepted": False})
    assert fake.account.redeemed_count == 1
    status, body = await fake.post("/backend/project_y/invite/accept", code, third)
    assert body == {"success": True, "already_accepted": True}


async def test_country_block_spares_me(fake: Sim) -> None:
    blocked = fake.state.add_account("cn@example.com", country_blocked="CN")
    assert (await fake.get("/backend/me", blocked))[0] == 200
    status, body = await fake.get("/backend/project_y/invite/mine", blocked)
    assert status == 403
    assert envelope_code(body) == "unsupported_country_code" and body["error"]["param"] == "CN"


async def test_usernames(fake: Sim) -> None:
    check = "/backend/project_y/profile/username/check"
    assert (await fake.post(check, {"username": "kitty"}))[1]["available"] is False
    assert (await fake.post(check, {"username": "kittyfan"}))[1]["available"] is False  # seeded
    assert (await fake.post(check, {"username": "kitty388"}))[1]["available"] is True
    fake.state.settings.taken_usernames.add("kitty388")
    assert (await fake.post(check, {"username": "kitty388"}))[1]["available"] is False
    status, body = await fake.post(
        "/backend/project_y/profile/username/set", {"username": "alice_new"}
    )
    assert status == 200 and body["username"] == "alice_new"
    assert fake.account.username == "alice_new"
    assert (await fake.post(check, {"username": "alice_new"}))[1]["available"] is False


async def test_session_token_to_access_token(fake: Sim) -> None:
    cookie = {"Cookie": f"__Secure-next-auth.session-token={fake.account.session_token}"}
    async with fake.client.get("/api/auth/session", headers=cookie) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["user"]["email"] == "alice@example.com"
    assert body["expires"].endswith("Z") and "T" in body["expires"]
    at = body["accessToken"]
    assert at != fake.account.access_token
    async with fake.client.get("/backend/me", headers={"Authorization": f"Bearer {at}"}) as resp:
        assert resp.status == 200

    bad = {"Cookie": "__Secure-next-auth.session-token=nope"}
    async with fake.client.get("/api/auth/session", headers=bad) as resp:
        assert resp.status == 401
    fake.state.expire_session(fake.account)
    for mode, status, text in (
        ("401_text", 401, "Unauthorized"),
        ("empty_200", 200, ""),
        ("no_access_token", 200, "{}"),
    ):
        fake.state.settings.session_failure = mode
        async with fake.client.get("/api/auth/session", headers=cookie) as resp:
            assert (resp.status, await resp.text()) == (status, text)


async def test_refresh_token_rotates(fake: Sim) -> None:
    old_rt = fake.account.refresh_token
    grant = {
        "client_id": "app_X",
        "grant_type": "refresh_token",
        "redirect_uri": "x",
        "refresh_token": old_rt,
    }
    async with fake.client.post("/oauth/token", json=grant) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["refresh_token"] != old_rt == grant["refresh_token"]
    assert body["expires_in"] == 3600
    assert fake.account.refresh_token == body["refresh_token"]
    assert (
        decode(body["access_token"])["https://api.openai.com/profile"]["email"]
        == "alice@example.com"
    )
    async with fake.client.post("/oauth/token", json=grant) as resp:
        assert resp.status in (400, 401)
        err = await resp.json()
    assert err["error"] == "invalid_grant" and err["error_description"]
    grant["refresh_token"] = body["refresh_token"]
    async with fake.client.post("/oauth/token", json=grant) as resp:
        assert resp.status == 200

    bound = fake.state.add_account("bound@example.com", client_id="app_GOOD")
    wrong = {
        "grant_type": "refresh_token",
        "client_id": "app_BAD",
        "refresh_token": bound.refresh_token,
    }
    async with fake.client.post("/oauth/token", json=wrong) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    fake.state.invalidate(bound, sessions=True)
    wrong["client_id"] = "app_GOOD"
    async with fake.client.post("/oauth/token", json=wrong) as resp:
        assert resp.status == 400


async def test_invalidated_account_recovers_with_a_new_token(fake: Sim) -> None:
    fake.state.invalidate(fake.account)
    assert (await fake.get("/backend/me"))[0] == 401
    fresh = fake.state.mint_access_token(fake.account)
    async with fake.client.get("/backend/me", headers={"Authorization": f"Bearer {fresh}"}) as resp:
        assert resp.status == 200


# -- images ------------------------------------------------------------------------------------


async def test_image_task_progresses_to_png(fake: Sim) -> None:
    status, body = await fake.post("/backend/video_gen", image_body(n_variants=2), sentinel=True)
    assert status == 200
    task_id = body["id"]
    assert task_id.startswith("task_") and len(task_id) == 31 and task_id == task_id.lower()
    _, listed = await fake.get("/backend/v2/recent_tasks?limit=20")
    task = listed["task_responses"][0]
    assert task["id"] == task_id and task["status"] == "processing"
    assert 0 <= task["progress_pct"] < 1 and task["generations"] == []
    fake.state.advance(0.15)  # image_seconds 30 × 0.01 = 0.3 s
    _, listed = await fake.get("/backend/v2/recent_tasks?limit=20")
    assert 0.3 < listed["task_responses"][0]["progress_pct"] < 0.8
    fake.state.advance(1)
    _, listed = await fake.get("/backend/v2/recent_tasks?limit=20")
    task = listed["task_responses"][0]
    assert task["status"] == "succeeded" and task["progress_pct"] == 1.0
    gens = task["generations"]
    assert len(gens) == 2 and all(g["id"].startswith("gen_") for g in gens)
    status, ctype, data = await fake.download(gens[0]["url"])
    assert (status, ctype) == (200, "image/png") and data.startswith(b"\x89PNG\r\n\x1a\n")
    other = (await fake.download(gens[1]["url"]))[2]
    assert other != data  # a colour per generation


async def test_recent_tasks_keeps_newest_twenty(fake: Sim) -> None:
    ids = [
        (await fake.post("/backend/video_gen", image_body(f"n{i}"), sentinel=True))[1]["id"]
        for i in range(23)
    ]
    _, listed = await fake.get("/backend/v2/recent_tasks?limit=20")
    assert [t["id"] for t in listed["task_responses"]] == ids[::-1][:20]
    other = fake.state.add_account()
    assert (await fake.get("/backend/v2/recent_tasks", other))[1] == {
        "task_responses": [],
        "cursor": None,
    }


async def test_image_failure_and_violation(fake: Sim) -> None:
    fake.state.scenario("fail", target="image", message="boom")
    fake.state.scenario("violation", target="image")
    for _ in range(2):
        await fake.post("/backend/video_gen", image_body(), sentinel=True)
    fake.state.advance(10)
    _, listed = await fake.get("/backend/v2/recent_tasks")
    violation, failed = listed["task_responses"]
    assert (
        failed["status"] == "failed"
        and failed["error_message"] == "boom"
        and failed["failure_reason"]
    )
    assert violation["status"] == "failed" and "content" in violation["error_message"]
    assert violation["generations"] == []


async def test_image_with_reference_upload(fake: Sim) -> None:
    form = file_form(png((1, 2, 3)), "image.png", "image/png", file_name="image.png")
    status, up = await fake.upload("/backend/uploads", form)
    assert status == 200 and up["id"].startswith("media_")
    items = [{"type": "image", "frame_index": 0, "upload_media_id": up["id"]}]
    body = image_body(operation="remix", inpaint_items=items)
    assert (await fake.post("/backend/video_gen", body, sentinel=True))[0] == 200
    items[0]["upload_media_id"] = "media_unknown"
    assert (await fake.post("/backend/video_gen", body, sentinel=True))[0] == 400


# -- videos ------------------------------------------------------------------------------------


async def test_video_pending_then_draft_with_mp4(fake: Sim) -> None:
    task_id = await fake.create_video(style_id="anime")
    _, pending = await fake.get("/backend/nf/pending")
    assert isinstance(pending, list) and pending[0]["id"] == task_id
    assert pending[0]["status"] == "queued" and pending[0]["progress_pct"] is None
    fake.state.advance(0.15 + 0.6)  # queue 15 × 0.01, then a quarter of 240 × 0.01
    _, pending = await fake.get("/backend/nf/pending/v2")
    first = pending[0]["progress_pct"]
    assert pending[0]["status"] == "running" and 0.1 < first < 0.5
    fake.state.advance(0.6)
    _, pending = await fake.get("/backend/nf/pending")
    assert pending[0]["progress_pct"] > first
    assert (await fake.get("/backend/project_y/profile/drafts?limit=15"))[1]["items"] == []

    draft = await fake.finish_video(task_id)
    assert draft["id"] == draft["generation_id"] and draft["id"].startswith("gen_")
    assert draft["kind"] == "sora_draft"
    assert draft["reason_str"] is None and draft["markdown_reason_str"] is None
    assert draft["url"] != draft["downloadable_url"]
    assert (draft["width"], draft["height"], draft["n_frames"]) == (720, 1280, 300)
    assert draft["url"].startswith(str(fake.client.make_url("/media/")))
    status, ctype, data = await fake.download(draft["downloadable_url"])
    assert (status, ctype) == (200, "video/mp4")
    assert data[4:12] == b"ftypisom" and b"moov" in data[:64] and b"mdat" in data[:4096]
    assert data != (await fake.download(draft["url"]))[2]


async def test_video_progress_in_real_time(fake: Sim) -> None:
    fake.state.settings.video_seconds = 20  # 0.2 s at time_scale 0.01
    fake.state.settings.video_queue_seconds = 0
    task_id = await fake.create_video()
    seen: list[float] = []
    for _ in range(100):
        _, pending = await fake.get("/backend/nf/pending/v2")
        if not pending:
            break
        seen.append(pending[0]["progress_pct"])
        await asyncio.sleep(0.02)
    assert seen == sorted(seen) and len(seen) >= 2
    _, drafts = await fake.get("/backend/project_y/profile/drafts")
    assert drafts["items"][0]["task_id"] == task_id


async def test_jumpy_progress_goes_up_and_down(fake: Sim) -> None:
    fake.state.scenario(jumpy=True)
    await fake.create_video()
    fake.state.advance(0.15)  # past the queue
    seen = []
    for _ in range(40):
        fake.state.advance(0.05)
        pending = (await fake.get("/backend/nf/pending"))[1]
        if not pending:
            break
        seen.append(pending[0]["progress_pct"])
    assert any(b < a for a, b in zip(seen, seen[1:], strict=False))
    assert all(0 <= p < 1 for p in seen)


async def test_quota_decrements_and_runs_out(fake: Sim) -> None:
    _, check = await fake.get("/backend/nf/check")
    balance = check["rate_limit_and_credit_balance"]
    assert (
        balance["estimated_num_videos_remaining"] == 30 and balance["rate_limit_reached"] is False
    )
    assert 0 < balance["access_resets_in_seconds"] <= 864
    await fake.finish_video(await fake.create_video())
    _, check = await fake.get("/backend/nf/check")
    assert check["rate_limit_and_credit_balance"]["estimated_num_videos_remaining"] == 29

    poor = fake.state.add_account("poor@example.com", quota=1)
    await fake.finish_video(await fake.create_video(poor), poor)
    _, check = await fake.get("/backend/nf/check", poor)
    assert check["rate_limit_and_credit_balance"]["rate_limit_reached"] is True
    status, body = await fake.post("/backend/nf/create", video_body(), poor, sentinel=True)
    assert status == 429 and envelope_code(body)
    fake.state.advance(900)  # the quota window (86400 × 0.01) has passed
    _, check = await fake.get("/backend/nf/check", poor)
    assert check["rate_limit_and_credit_balance"]["estimated_num_videos_remaining"] == 1


async def test_concurrency_limit(fake: Sim) -> None:
    for _ in range(3):
        await fake.create_video()
    status, body = await fake.post("/backend/nf/create", video_body(), sentinel=True)
    assert status == 429 and envelope_code(body) == "too_many_concurrent_tasks"
    assert "3" in body["error"]["message"]
    fake.state.advance(60)
    await fake.create_video()


async def test_storyboard_and_remix(fake: Sim) -> None:
    prompt = "current timeline:\nShot 1:\nduration: 5.0sec\nScene: cat jumps\n\ninstructions:\nCat"
    body = video_body(
        prompt,
        title="Draft your video",
        orientation="landscape",
        n_frames=450,
        storyboard_id=None,
        style_id=None,
    )
    status, created = await fake.post("/backend/nf/create/storyboard", body, sentinel=True)
    assert status == 200
    _, pending = await fake.get("/backend/nf/pending")
    assert pending[0]["prompt"] == prompt and pending[0]["title"] == "Draft your video"
    draft = await fake.finish_video(created["id"])
    assert (draft["width"], draft["height"], draft["n_frames"]) == (1280, 720, 450)

    remix = video_body(
        "ink style", remix_target_id="s_" + "a" * 32, cameo_ids=[], cameo_replacements={}
    )
    del remix["size"]
    assert (await fake.post("/backend/nf/create", remix, sentinel=True))[0] == 200
    remix["remix_target_id"] = "s_NOTHEX"
    assert (await fake.post("/backend/nf/create", remix, sentinel=True))[0] == 400


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": None},
        {"prompt": ""},
        {"orientation": "diagonal"},
        {"n_frames": 301},
        {"kind": "image"},
        {"size": "huge"},
    ],
)
async def test_create_payload_validation(fake: Sim, change: dict[str, Any]) -> None:
    body = video_body()
    body.update(change)
    if change.get("prompt", 1) is None:
        del body["prompt"]
    status, resp = await fake.post("/backend/nf/create", body, sentinel=True)
    assert status == 400
    assert (
        envelope_code(resp) == "invalid_request"
        and resp["error"]["message"] == "Unable to process request"
    )


async def test_sentinel_required_on_the_four_calls(fake: Sim) -> None:
    for path, body in (
        ("/backend/nf/create", video_body()),
        ("/backend/video_gen", image_body()),
        ("/backend/nf/create/storyboard", video_body()),
        ("/backend/project_y/post", {}),
    ):
        status, resp = await fake.post(path, body)
        assert status == 400 and envelope_code(resp) == "sentinel_block", path
    fake.state.settings.strict_sentinel = False
    assert (await fake.post("/backend/nf/create", video_body()))[0] == 200


async def test_violation_draft(fake: Sim) -> None:
    fake.state.scenario("violation", target="video")
    draft = await fake.finish_video(await fake.create_video())
    assert draft["kind"] == "sora_content_violation"
    assert draft["reason_str"] and draft["markdown_reason_str"]
    assert draft["url"] is None and draft["downloadable_url"] is None
    _, check = await fake.get("/backend/nf/check")
    assert check["rate_limit_and_credit_balance"]["estimated_num_videos_remaining"] == 30


async def test_failed_video_lingers_in_pending_then_vanishes(fake: Sim) -> None:
    fake.state.scenario("fail", fail_at=0.4)
    task_id = await fake.create_video()
    fake.state.advance(60)
    for _ in range(3):
        _, pending = await fake.get("/backend/nf/pending/v2")
        assert pending[0]["id"] == task_id and pending[0]["status"] == "failed"
        assert pending[0]["error_message"] and pending[0]["failure_reason"]
        assert pending[0]["progress_pct"] == 0.4
    assert (await fake.get("/backend/nf/pending/v2"))[1] == []
    assert (await fake.get("/backend/project_y/profile/drafts"))[1]["items"] == []
    await fake.create_video()  # the failed task freed its slot: 3 more fit
    await fake.create_video()
    await fake.create_video()


async def test_vanish_and_plateau(fake: Sim) -> None:
    fake.state.scenario("vanish")
    fake.state.scenario(plateau=True)
    vanishing = await fake.create_video()
    stuck = await fake.create_video()
    fake.state.advance(60)
    _, pending = await fake.get("/backend/nf/pending")
    assert [(t["id"], t["status"], t["progress_pct"]) for t in pending] == [(stuck, "running", 0.0)]
    assert all(
        d["task_id"] != vanishing
        for d in (await fake.get("/backend/project_y/profile/drafts"))[1]["items"]
    )


async def test_draft_lag_and_null_urls(fake: Sim) -> None:
    fake.state.scenario(draft_lag=2, draft_null_urls_polls=1, email=fake.account.email)
    task_id = await fake.create_video()
    fake.state.advance(60)
    assert (await fake.get("/backend/nf/pending"))[1] == []
    drafts_path = "/backend/project_y/profile/drafts?limit=15"
    for _ in range(2):
        assert (await fake.get(drafts_path))[1]["items"] == []
    first = (await fake.get(drafts_path))[1]["items"][0]
    assert first["task_id"] == task_id and first["kind"] == "sora_draft"
    assert (
        first["url"] is None and first["downloadable_url"] is None and first["reason_str"] is None
    )
    second = (await fake.get(drafts_path))[1]["items"][0]
    assert second["downloadable_url"]
    assert fake.state.polls(fake.account.email, "/backend/project_y/profile/drafts") == 4


async def test_drafts_limit_and_overflow(fake: Sim) -> None:
    fake.state.add_account("x@example.com")
    heavy = fake.state.add_account("heavy@example.com", max_concurrent_videos=50, quota=50)
    ids = [await fake.create_video(heavy) for _ in range(17)]
    fake.state.advance(60)
    _, drafts = await fake.get("/backend/project_y/profile/drafts?limit=15", heavy)
    assert [d["task_id"] for d in drafts["items"]] == ids[::-1][:15]
    assert (
        len((await fake.get("/backend/project_y/profile/drafts?limit=3", heavy))[1]["items"]) == 3
    )


async def test_large_video_scenario_streams_full_length(fake: Sim) -> None:
    size = 50 * 1024 * 1024
    fake.state.scenario(video_bytes=size)
    draft = await fake.finish_video(await fake.create_video())
    async with fake.client.session.get(draft["downloadable_url"]) as resp:
        assert resp.status == 200 and resp.content_length == size
        head = await resp.content.read(12)
        received = len(head)
        async for chunk in resp.content.iter_chunked(1 << 20):
            received += len(chunk)
    assert head[4:12] == b"ftypisom" and received == size


# -- uploads -----------------------------------------------------------------------------------


async def test_upload_validation(fake: Sim) -> None:
    ok = file_form(png((9, 9, 9)), "image.png", "image/png", file_name="image.png")
    assert (await fake.upload("/backend/uploads", ok))[0] == 200
    jpeg = file_form(
        b"\xff\xd8\xff\xe0" + b"0" * 100, "image.png", "image/png", file_name="image.png"
    )
    assert (await fake.upload("/backend/uploads", jpeg))[0] == 200  # label says png: fine
    empty = file_form(b"", "image.png", "image/png", file_name="image.png")
    assert (await fake.upload("/backend/uploads", empty))[0] == 400
    text = file_form(b"hello world", "image.png", "image/png", file_name="image.png")
    assert (await fake.upload("/backend/uploads", text))[0] == 400
    no_name = file_form(png((1, 1, 1)), "image.png", "image/png")
    assert (await fake.upload("/backend/uploads", no_name))[0] == 400
    fake.state.settings.upload_max_bytes = 1000
    big = file_form(png((1, 1, 1)) + b"\0" * 2000, "image.png", "image/png", file_name="image.png")
    assert (await fake.upload("/backend/uploads", big))[0] == 413
    status, _ = await fake.post("/backend/uploads", {"file": "x"})
    assert status == 400


async def test_journal_records_json_and_multipart(fake: Sim) -> None:
    await fake.create_video(style_id="anime")
    form = file_form(png((1, 2, 3)), "image.png", "image/png", file_name="image.png")
    await fake.upload("/backend/uploads", form)
    await fake.client.get("/_sim/journal")
    create = fake.state.calls("POST", "/backend/nf/create")[0]
    assert create.json["style_id"] == "anime" and create.json["n_frames"] == 300
    assert create.headers["openai-sentinel-token"] == SENTINEL["openai-sentinel-token"]
    assert create.account_email == "alice@example.com" and create.status == 200
    upload = fake.state.calls("POST", "/backend/uploads")[0]
    assert upload.form["file"]["filename"] == "image.png"
    assert upload.form["file"]["content_type"] == "image/png"
    assert upload.form["file"]["size"] == len(png((1, 2, 3)))
    assert upload.form["file_name"]["text"] == "image.png"
    assert not fake.state.calls("*", "/_sim/*")
    assert fake.state.counts[("POST", "/backend/nf/create")] == 1
    fake.state.clear_journal()
    assert fake.state.journal == [] and not fake.state.counts


async def test_cameo_upload_requires_video_and_timestamps(fake: Sim) -> None:
    video = mp4_bytes()
    ok = file_form(video, "video.mp4", "video/mp4", timestamps="0,3")
    assert (await fake.upload("/backend/characters/upload", ok))[0] == 200
    for form in (
        file_form(b"not a video", "video.mp4", "video/mp4", timestamps="0,3"),
        file_form(video, "video.mp4", "video/mp4", timestamps="3,1"),
        file_form(video, "video.mp4", "video/mp4"),
    ):
        assert (await fake.upload("/backend/characters/upload", form))[0] == 400
