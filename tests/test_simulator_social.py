"""The simulator's cameo, publishing, feed, profile and search endpoints."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from sora2api.simulator import SIM_STATE, create_simulator, mp4_bytes, png

from .sim_helpers import Sim, file_form

ClientMaker = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def fake(aiohttp_client: ClientMaker) -> Sim:
    app = create_simulator(time_scale=0.01, seed=11)
    state = app[SIM_STATE]
    client = await aiohttp_client(app)
    return Sim(client, state, state.add_account("bob@example.com"))


async def _draft_id(fake: Sim) -> str:
    return str((await fake.finish_video(await fake.create_video()))["id"])


# -- cameos ------------------------------------------------------------------------------------


async def test_cameo_flow_to_finalize_and_delete(fake: Sim) -> None:
    form = file_form(mp4_bytes(), "video.mp4", "video/mp4", timestamps="0,3")
    status, body = await fake.upload("/backend/characters/upload", form)
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", body["id"])
    cameo_id = body["id"]
    progress_path = f"/backend/project_y/cameos/in_progress/{cameo_id}"
    _, progress = await fake.get(progress_path)
    assert progress["status"] == "processing" and progress["profile_asset_url"] is None
    fake.state.advance(5)  # cameo_seconds 60 × 0.01
    _, done = await fake.get(progress_path)
    assert done["status"] == "finalized" and done["status_message"] == "Completed"
    assert done["username_hint"].startswith("owner.") and done["display_name_hint"]
    assert done["instruction_set_hint"]
    status, ctype, avatar = await fake.download(done["profile_asset_url"])
    assert (status, ctype) == (200, "image/png") and avatar.startswith(b"\x89PNG")

    avatar_form = file_form(avatar, "profile.webp", "image/webp", use_case="profile")
    status, asset = await fake.upload("/backend/project_y/file/upload", avatar_form)
    assert status == 200 and asset["asset_pointer"]
    final = {
        "cameo_id": cameo_id,
        "username": "kitty388",
        "display_name": done["display_name_hint"],
        "profile_asset_pointer": asset["asset_pointer"],
        "instruction_set": {"value": [{"type": "text", "value": done["instruction_set_hint"]}]},
        "safety_instruction_set": None,
    }
    status, body = await fake.post("/backend/characters/finalize", final)
    assert status == 200
    character = body["character"]
    assert re.fullmatch(r"ch_[0-9a-f]{32}", character["character_id"])
    assert (character["username"], character["cameo_id"]) == ("kitty388", cameo_id)
    assert (await fake.post("/backend/project_y/profile/username/check", {"username": "kitty388"}))[
        1
    ]["available"] is False

    update = f"/backend/project_y/cameos/by_id/{cameo_id}/update_v2"
    status, echoed = await fake.post(update, {"visibility": "public"})
    assert status == 200 and echoed["visibility"] == "public" and echoed["id"] == cameo_id
    assert (await fake.post(update, {"visibility": "secret"}))[0] == 400
    _, found = await fake.get(
        "/backend/project_y/profile/search_mentions?username=kitty388&intent=cameo&limit=10"
    )
    assert found["items"][0]["token"] == f"<@{character['character_id']}>"

    delete = f"/backend/project_y/characters/{character['character_id']}"
    headers = fake.headers()
    async with fake.client.delete(delete, headers=headers) as resp:
        assert resp.status == 204
    async with fake.client.delete(delete, headers=headers) as resp:
        assert resp.status == 404


async def test_cameo_failure_and_not_ready(fake: Sim) -> None:
    fake.state.scenario("fail", target="cameo", message="no face found")
    form = file_form(mp4_bytes(), "video.mp4", "video/mp4", timestamps="0,3")
    cameo_id = (await fake.upload("/backend/characters/upload", form))[1]["id"]
    body = {"cameo_id": cameo_id, "username": "someone123", "display_name": "S"}
    assert (await fake.post("/backend/characters/finalize", body))[0] == 400  # still processing
    fake.state.advance(5)
    _, progress = await fake.get(f"/backend/project_y/cameos/in_progress/{cameo_id}")
    assert progress["status"] == "failed" and progress["status_message"] == "no face found"
    other = fake.state.add_account()
    assert (await fake.get(f"/backend/project_y/cameos/in_progress/{cameo_id}", other))[0] == 404


# -- publishing --------------------------------------------------------------------------------


async def test_publish_parse_and_delete(fake: Sim) -> None:
    gen_id = await _draft_id(fake)
    body = {"attachments_to_create": [{"generation_id": gen_id, "kind": "sora"}], "post_text": ""}
    status, created = await fake.post("/backend/project_y/post", body, sentinel=True)
    assert status == 200
    post_id = created["post"]["id"]
    assert re.fullmatch(r"s_[0-9a-f]{32}", post_id)
    assert created["post"]["permalink"] == f"https://sora.chatgpt.com/p/{post_id}"

    status, detail = await fake.get(f"/backend/project_y/post/{post_id}")
    source = detail["post"]["attachments"][0]["encodings"]["source"]["path"]
    assert status == 200 and (await fake.download(source))[2][4:8] == b"ftyp"

    third_party = f"/thirdparty/MP4/{post_id}.mp4"
    async with fake.client.get(third_party) as resp:
        assert resp.status == 200 and resp.content_type == "video/mp4"
        assert (await resp.read())[4:8] == b"ftyp"
    parse = {"url": f"https://sora.chatgpt.com/p/{post_id}", "token": "sim-parser-token"}
    async with fake.client.post("/get-sora-link", json=parse) as resp:
        link = (await resp.json())["download_link"]
    assert (await fake.download(link))[0] == 200
    async with fake.client.post("/get-sora-link", json={**parse, "token": "bad"}) as resp:
        assert resp.status == 200 and "error" in await resp.json()

    _, mine = await fake.get("/backend/project_y/profile_feed/me?limit=8&cut=nf2")
    assert [i["post"]["id"] for i in mine["items"]] == [post_id]

    headers = fake.headers()
    async with fake.client.delete(f"/backend/project_y/post/{post_id}", headers=headers) as resp:
        assert resp.status == 204
    async with fake.client.delete(f"/backend/project_y/post/{post_id}", headers=headers) as resp:
        assert resp.status == 404
    async with fake.client.get(third_party) as resp:
        assert resp.status == 404
    assert fake.state.posts[post_id].deleted is True
    assert (await fake.get(f"/backend/project_y/post/{post_id}"))[0] == 404


async def test_thirdparty_404_before_publish_and_publish_errors(fake: Sim) -> None:
    async with fake.client.get(f"/thirdparty/MP4/s_{'0' * 32}.mp4") as resp:
        assert resp.status == 404
    gen_id = await _draft_id(fake)
    long_text = {
        "attachments_to_create": [{"generation_id": gen_id, "kind": "sora"}],
        "post_text": "x" * 2001,
    }
    assert (await fake.post("/backend/project_y/post", long_text, sentinel=True))[0] == 400
    unknown = {
        "attachments_to_create": [{"generation_id": "gen_nope", "kind": "sora"}],
        "post_text": "",
    }
    assert (await fake.post("/backend/project_y/post", unknown, sentinel=True))[0] == 400
    assert not [p for p in fake.state.posts.values() if p.email]


# -- feed, profiles, search --------------------------------------------------------------------


async def test_feed_pagination_with_cursor(fake: Sim) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        path = "/backend/project_y/feed?limit=8&cut=nf2_latest" + (
            f"&cursor={cursor}" if cursor else ""
        )
        status, page = await fake.get(path)
        assert status == 200
        seen += [item["post"]["id"] for item in page["items"]]
        for item in page["items"]:
            assert {
                "id",
                "text",
                "permalink",
                "preview_image_url",
                "posted_at",
                "like_count",
            } <= set(item["post"])
            attachment = item["post"]["attachments"][0]
            assert attachment["encodings"]["thumbnail"]["path"] and attachment["n_frames"] in (
                300,
                450,
            )
            assert {
                "user_id",
                "username",
                "display_name",
                "profile_picture_url",
                "verified",
            } <= set(item["profile"])
        cursor = page["cursor"]
        if cursor is None:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert len(seen) == len(set(seen)) == 36
    times = [fake.state.posts[p].posted_at for p in seen]
    assert times == sorted(times, reverse=True)
    _, top = await fake.get("/backend/project_y/feed?limit=5&cut=nf2_top")
    likes = [i["post"]["like_count"] for i in top["items"]]
    assert likes == sorted(likes, reverse=True)
    assert (await fake.get("/backend/project_y/feed?cut=bogus"))[0] == 400
    assert (await fake.get("/backend/project_y/feed?cut=nf2&cursor=%%%"))[0] == 400


async def test_profile_and_user_feed(fake: Sim) -> None:
    status, profile = await fake.get("/backend/project_y/profile/username/kittyfan")
    assert status == 200
    fields = {
        "user_id",
        "username",
        "display_name",
        "follower_count",
        "following_count",
        "post_count",
        "likes_received_count",
        "remix_count",
        "cameo_count",
        "can_cameo",
        "verified",
        "description",
        "permalink",
    }
    assert fields <= set(profile) and profile["post_count"] == 3
    assert (await fake.get("/backend/project_y/profile/username/nobody_here"))[0] == 404
    _, page = await fake.get(
        f"/backend/project_y/profile_feed/{profile['user_id']}?limit=2&cut=nf2"
    )
    assert len(page["items"]) == 2 and page["cursor"]
    _, rest = await fake.get(
        f"/backend/project_y/profile_feed/{profile['user_id']}?limit=2&cut=nf2&cursor={page['cursor']}"
    )
    assert len(rest["items"]) == 1 and rest["cursor"] is None
    assert (await fake.get("/backend/project_y/profile_feed/user-unknown"))[0] == 404


async def test_search_mentions_intents(fake: Sim) -> None:
    _, users = await fake.get(
        "/backend/project_y/profile/search_mentions?username=a&intent=users&limit=50"
    )
    _, cameos = await fake.get(
        "/backend/project_y/profile/search_mentions?username=a&intent=cameo&limit=50"
    )
    assert len(users["items"]) > len(cameos["items"]) > 0
    for item in cameos["items"]:
        assert item["profile"]["can_cameo"] is True
        assert re.fullmatch(r"<@ch_[0-9a-f]{32}>", item["token"])
    _, limited = await fake.get(
        "/backend/project_y/profile/search_mentions?username=&intent=users&limit=2"
    )
    assert len(limited["items"]) == 2
    assert (await fake.get("/backend/project_y/profile/search_mentions?username=a&intent=bogus"))[
        0
    ] == 400


async def test_avatar_upload_rejects_non_images(fake: Sim) -> None:
    bad = file_form(b"text", "profile.webp", "image/webp", use_case="profile")
    assert (await fake.upload("/backend/project_y/file/upload", bad))[0] == 400
    no_use = file_form(png((3, 3, 3)), "profile.webp", "image/webp")
    assert (await fake.upload("/backend/project_y/file/upload", no_use))[0] == 400
