"""The API-key data routes (search, feeds, profiles, stats, invite code) against the simulator."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.simulator import mp4_bytes

from .conftest import API_KEY, KEY, Sim
from .helpers import add_token, chat, data_url, final_result, read_sse


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    """The app with one simulator account added as token 1."""
    await add_token(client, sim.state.add_account("carol@sim.example"))
    sim.state.clear_journal()
    return client


async def _ok(client: TestClient, path: str) -> dict[str, Any]:
    resp = await client.get(path, headers=KEY)
    body = await resp.json()
    assert resp.status == 200, body
    assert body.get("success", True) is True
    return body


async def _error(client: TestClient, path: str, status: int) -> dict[str, Any]:
    resp = await client.get(path, headers=KEY)
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]


def _seeded(sim: Sim, username: str) -> Any:
    return next(p for p in sim.state.profiles.values() if p.username == username)


# -- search ------------------------------------------------------------------------------------


async def test_search_is_reachable_with_the_key_and_shaped(ready: TestClient, sim: Sim) -> None:
    body = await _ok(ready, "/api/characters/search?username=kitty&limit=5")
    assert body["query"] == "kitty" and body["count"] == len(body["results"]) >= 1
    first = body["results"][0]
    assert set(first) == {
        "user_id",
        "username",
        "display_name",
        "profile_picture_url",
        "permalink",
        "can_cameo",
        "verified",
        "follower_count",
        "token",
        "owner",
    }
    kitty = _seeded(sim, "kittyfan")
    assert first["username"] == "kittyfan" and first["user_id"] == kitty.user_id
    assert first["token"] == f"<@{kitty.user_id}>" and first["owner"] is None
    assert first["follower_count"] == kitty.follower_count
    (call,) = sim.state.calls("GET", "/backend/project_y/profile/search_mentions")
    assert call.query == {"username": "kitty", "intent": "users", "limit": "5"}


async def test_search_cameo_intent_and_special_characters(ready: TestClient, sim: Sim) -> None:
    body = await _ok(ready, "/api/characters/search?username=a&intent=cameo")
    assert body["results"] and all(r["can_cameo"] for r in body["results"])
    assert all(r["token"].startswith("<@ch_") for r in body["results"])
    weird = "a b&c=d/é#?"
    from urllib.parse import quote

    body = await _ok(ready, f"/api/characters/search?username={quote(weird, safe='')}")
    assert body["query"] == weird and body["count"] == 0
    # The value reached the backend intact: nothing split at & or = or lost after #.
    call = sim.state.calls("GET", "/backend/project_y/profile/search_mentions")[-1]
    assert call.query["username"] == weird


async def test_search_finds_a_character_with_its_owner(ready: TestClient, sim: Sim) -> None:
    sim.state.settings.cameo_seconds = 20
    body = chat(
        "sora-video-10s",
        [{"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}}],
        stream=True,
        character_options={"username": "owned_cat"},
    )
    frames, _ = await read_sse(await ready.post("/v1/chat/completions", json=body, headers=KEY))
    assert final_result(frames)["username"] == "owned_cat"
    found = await _ok(ready, "/api/characters/search?username=owned_cat&intent=cameo")
    (hit,) = found["results"]
    account = sim.state.account("carol@sim.example")
    assert hit["owner"] == {
        "user_id": account.user_id,
        "username": account.username,
        "display_name": account.name,
    }
    assert hit["can_cameo"] is True and hit["token"].startswith("<@ch_")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("intent=friends", "intent"),
        ("limit=ten", "limit"),
        ("limit=0", "limit"),
        ("limit=51", "limit"),
        ("token_id=abc", "token_id"),
        ("token_id=-1", "token_id"),
    ],
)
async def test_search_bad_query_is_400_naming_it(ready: TestClient, query: str, param: str) -> None:
    err = await _error(ready, f"/api/characters/search?username=x&{query}", 400)
    assert err["param"] == param and param in err["message"]


async def test_unknown_token_id_is_404(ready: TestClient) -> None:
    for path in (
        "/api/characters/search?token_id=99",
        "/api/feed?token_id=99",
        "/api/tokens/99/profile-feed",
        "/api/profile/kittyfan?token_id=99",
    ):
        err = await _error(ready, path, 404)
        assert "99" in err["message"]


async def test_no_tokens_is_503_with_the_reason(client: TestClient) -> None:
    err = await _error(client, "/api/feed", 503)
    assert "no tokens" in err["message"]


async def test_search_upstream_failure_is_not_an_empty_success(ready: TestClient, sim: Sim) -> None:
    sim.state.inject("GET", "/backend/project_y/profile/search_mentions", "500")
    err = await _error(ready, "/api/characters/search?username=kitty", 502)
    assert err["code"] == "server_error" and "Sora server error (HTTP 500)" in err["message"]
    assert "token 1" in err["message"] and "carol@" not in err["message"]


# -- feeds -------------------------------------------------------------------------------------


async def test_feed_shape_and_paging(ready: TestClient, sim: Sim) -> None:
    body = await _ok(ready, "/api/feed?limit=4")
    assert body["cut"] == "nf2_latest" and body["count"] == 4 and body["cursor"]
    item = body["items"][0]
    assert set(item) == {
        "id",
        "text",
        "permalink",
        "preview_image_url",
        "posted_at",
        "like_count",
        "view_count",
        "remix_count",
        "attachment",
        "author",
    }
    assert set(item["attachment"]) == {
        "kind",
        "url",
        "downloadable_url",
        "width",
        "height",
        "n_frames",
        "duration_seconds",
        "thumbnail_url",
    }
    assert set(item["author"]) == {
        "user_id",
        "username",
        "display_name",
        "profile_picture_url",
        "permalink",
        "verified",
        "follower_count",
    }
    post = sim.state.posts[item["id"]]
    assert item["attachment"]["duration_seconds"] == round(post.n_frames / 30, 2)
    assert item["attachment"]["thumbnail_url"] and "thumb" in item["attachment"]["thumbnail_url"]
    assert item["author"]["user_id"] == post.user_id
    posted = [i["posted_at"] for i in body["items"]]
    assert posted == sorted(posted, reverse=True)

    page2 = await _ok(ready, f"/api/feed?limit=4&cursor={body['cursor']}")
    assert not {i["id"] for i in page2["items"]} & {i["id"] for i in body["items"]}
    call = sim.state.calls("GET", "/backend/project_y/feed")[-1]
    assert call.query == {"limit": "4", "cut": "nf2_latest", "cursor": body["cursor"]}


async def test_feed_top_cut(ready: TestClient, sim: Sim) -> None:
    body = await _ok(ready, "/api/feed?cut=nf2_top&limit=8")
    assert body["cut"] == "nf2_top" and body["count"] == 8
    likes = [i["like_count"] for i in body["items"]]
    assert likes == sorted(likes, reverse=True)


@pytest.mark.parametrize(
    ("query", "param"), [("cut=nf2_hot", "cut"), ("limit=x", "limit"), ("limit=101", "limit")]
)
async def test_feed_bad_query(ready: TestClient, query: str, param: str) -> None:
    err = await _error(ready, f"/api/feed?{query}", 400)
    assert err["param"] == param


async def test_feed_bad_cursor_is_the_upstreams_400(ready: TestClient) -> None:
    err = await _error(ready, "/api/feed?cursor=garbage", 400)
    assert "Invalid cursor" in err["message"]


@pytest.mark.parametrize(
    ("fault", "status", "code", "words"),
    [
        ("500", 502, "server_error", "Sora server error"),
        ("403_cloudflare", 502, "cloudflare", "Cloudflare"),
        ("malformed_json", 502, "malformed_response", "Unreadable response"),
    ],
)
async def test_feed_upstream_failures_are_surfaced(
    ready: TestClient, sim: Sim, fault: str, status: int, code: str, words: str
) -> None:
    sim.state.inject("GET", "/backend/project_y/feed", fault)
    err = await _error(ready, "/api/feed", status)
    assert err["code"] == code and words in err["message"]


async def test_invalidated_token_is_marked_by_a_data_call(ready: TestClient, sim: Sim) -> None:
    sim.state.inject("GET", "/backend/project_y/feed", "401_invalidated")
    err = await _error(ready, "/api/feed", 502)
    assert err["code"] == "token_invalid"
    assert ready.app[keys.POOL].state(1).row["status"] == "invalid"
    err = await _error(ready, "/api/feed", 503)
    assert "1 invalid" in err["message"]


async def test_token_profile_feed(ready: TestClient, sim: Sim) -> None:
    body = await _ok(ready, "/api/tokens/1/profile-feed")
    assert body["token_id"] == 1 and body["feed"] == {"items": [], "cursor": None}
    (call,) = sim.state.calls("GET", "/backend/project_y/profile_feed/me")
    assert call.query == {"limit": "12", "cut": "nf2"}
    err = await _error(ready, "/api/tokens/abc/profile-feed", 400)
    assert err["param"] == "id"


async def test_user_feed(ready: TestClient, sim: Sim) -> None:
    user = _seeded(sim, "deepsea")
    body = await _ok(ready, f"/api/user/{user.user_id}/feed?limit=2")
    assert body["user_id"] == user.user_id
    items = body["feed"]["items"]
    assert len(items) == 2 and all(i["post"]["shared_by"] == user.user_id for i in items)
    assert body["feed"]["cursor"]
    err = await _error(ready, "/api/user/user-nobody/feed", 404)
    assert "User not found" in err["message"]


async def test_profile(ready: TestClient, sim: Sim) -> None:
    body = await _ok(ready, "/api/profile/retro.wave")
    profile = body["profile"]
    assert (
        profile["username"] == "retro.wave"
        and profile["user_id"] == _seeded(sim, "retro.wave").user_id
    )
    for field in ("follower_count", "following_count", "post_count", "can_cameo", "verified"):
        assert field in profile
    err = await _error(ready, "/api/profile/no%20body", 404)
    assert err["code"] == "not_found" and "Profile not found" in err["message"]
    assert sim.state.calls("GET", "/backend/project_y/profile/username/no body")


# -- stats and invite code ---------------------------------------------------------------------


async def test_public_stats_counts_without_secrets(ready: TestClient, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    assert resp.status == 200
    raw = await (await ready.get("/api/public/stats", headers=KEY)).text()
    body = await _ok(ready, "/api/public/stats")
    assert body["images"] == {"total": 1, "today": 1}
    assert body["videos"] == {"total": 0, "today": 0}
    assert body["errors"]["total"] == 0 and body["characters"]["total"] == 0
    assert body["tokens"]["total"] == 1 and body["tokens"]["by_status"] == {"active": 1}
    assert body["tokens"]["available"] == {"image": 1, "video": 1}
    assert body["jobs"]["running"] == 0
    account = sim.state.account("carol@sim.example")
    for secret in (account.access_token, API_KEY, account.email):
        assert secret not in raw


async def test_invite_code(ready: TestClient, sim: Sim) -> None:
    account = sim.state.account("carol@sim.example")
    body = await _ok(ready, "/api/public/invite-code")
    assert body["invite_code"] == account.invite_code
    assert (body["remaining_count"], body["total_count"]) == (4, 4)
    assert body["email"] == "ca***@sim.example"
    await ready.app[keys.POOL].update_row(1, {"sora2_redeemed": 4})
    body = await (await ready.get("/api/public/invite-code", headers=KEY)).json()
    assert body["success"] is False and "invite" in body["message"]


async def test_invite_code_without_tokens(client: TestClient) -> None:
    body = await (await client.get("/api/public/invite-code", headers=KEY)).json()
    assert body == {"success": False, "message": "No active Sora-2 token has invite codes left"}
