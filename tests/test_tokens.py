"""Token lifecycle over HTTP against the simulator: add, list, test, refresh, import/export, admin."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sora2api import keys
from sora2api.credentials import classify_credential, parse_text, quota_values
from sora2api.keys import TOKENS
from sora2api.mask import mask_proxy

from .conftest import KEY, Sim
from .helpers import admin_headers

MakeClient = Callable[..., Awaitable[TestClient]]


async def add(client: TestClient, status: int = 201, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/tokens", json=body, headers=KEY)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def listing(client: TestClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/tokens", headers=KEY)
    assert resp.status == 200
    return (await resp.json())["data"]


def auth_header_of(sim: Sim, path: str) -> list[str]:
    return [e.headers.get("authorization", "") for e in sim.state.calls("*", path)]


# -- adding --------------------------------------------------------------------------------------


async def test_add_access_token_runs_every_step_and_upserts_by_email(
    client: TestClient, sim: Sim
) -> None:
    acc = sim.state.add_account(plan="chatgpt_pro", quota=27)
    body = await add(client, token=acc.access_token, remark="main")
    tok = body["token"]
    assert body["result"] == "created"
    assert tok["email"] == acc.email
    assert tok["status"] == "active"
    assert tok["plan_type"] == "chatgpt_pro" and tok["plan_title"] == "ChatGPT Pro"
    assert tok["sora2_supported"] is True and tok["sora2_invite_code"] == acc.invite_code
    assert tok["quota_remaining"] == 27 and tok["quota_resets_at"] > 0
    assert tok["username"] == acc.username and tok["remark"] == "main"
    assert tok["at_expires"] == pytest.approx(sim.state.tokens[acc.access_token].exp, abs=1)
    bearer = f"Bearer {acc.access_token}"
    for path in (
        "/backend/me",
        "/backend/billing/subscriptions",
        "/backend/project_y/invite/mine",
        "/backend/nf/check",
    ):
        assert auth_header_of(sim, path) == [bearer], path
    assert not sim.state.calls("POST", "/backend/project_y/profile/username/set")

    # The same account again: an update (200), not a conflict; the remark is kept.
    again = await add(client, status=200, token=sim.state.mint_access_token(acc))
    assert again["result"] == "updated" and again["token"]["id"] == tok["id"]
    assert again["token"]["remark"] == "main"
    assert len(await listing(client)) == 1


async def test_add_session_token(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    body = await add(client, st=acc.session_token)
    assert body["token"]["email"] == acc.email and body["token"]["has_session_token"]
    (call,) = sim.state.calls("GET", "/api/auth/session")
    assert f"__Secure-next-auth.session-token={acc.session_token}" in call.headers["cookie"]
    stored = client.app[keys.POOL].state(body["token"]["id"]).row
    assert stored["access_token"] != acc.access_token  # a fresh AT minted from the session
    assert sim.state.tokens[stored["access_token"]].email == acc.email
    assert stored["session_token"] == acc.session_token


async def test_add_refresh_token_stores_the_rotated_one(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    old_rt = acc.refresh_token
    body = await add(client, rt=old_rt, client_id="app_custom")
    stored = client.app[keys.POOL].state(body["token"]["id"]).row
    (call,) = sim.state.calls("POST", "/oauth/token")
    assert call.json["refresh_token"] == old_rt and call.json["client_id"] == "app_custom"
    assert stored["refresh_token"] == acc.refresh_token != old_rt
    assert stored["client_id"] == "app_custom"
    # The old RT is dead at the simulator: using it again is refused.
    resp = await client.session.post(
        sim.url + "/oauth/token", json={"grant_type": "refresh_token", "refresh_token": old_rt}
    )
    assert resp.status == 400 and "already been used" in (await resp.json())["error_description"]


async def test_token_field_holding_a_session_token_is_understood(
    client: TestClient, sim: Sim
) -> None:
    acc = sim.state.add_account()
    body = await add(client, token=acc.session_token)
    assert body["token"]["email"] == acc.email and body["token"]["has_session_token"]


async def test_failing_session_token_names_the_step(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    sim.state.expire_session(acc)
    body = await add(client, status=400, st=acc.session_token)
    msg = body["error"]["message"]
    assert "failed at step 'auth/session'" in msg and "Session expired or invalid" in msg
    assert await listing(client) == []


async def test_invalid_jwt_is_400_not_409(client: TestClient, sim: Sim) -> None:
    body = await add(client, status=400, token="definitely-not-a-jwt")
    assert body["error"]["message"].startswith("Invalid access token: not a JWT")
    assert body["error"]["param"] == "token"
    assert not sim.state.calls("*", "/backend/*")


async def test_billing_token_expired_fails_naming_the_step(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    sim.state.inject("GET", "/backend/billing/subscriptions", "401_expired")
    body = await add(client, status=400, token=acc.access_token)
    msg = body["error"]["message"]
    assert msg.startswith(
        "Adding the token failed at step 'billing/subscriptions': Token expired (HTTP 401)"
    )
    assert body["error"]["code"] == "token_expired"
    assert await listing(client) == []


async def test_username_is_set_when_missing(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account(username=None)
    body = await add(client, token=acc.access_token)
    assert acc.username and body["token"]["username"] == acc.username
    (set_call,) = sim.state.calls("POST", "/backend/project_y/profile/username/set")
    assert set_call.json == {"username": acc.username}
    assert sim.state.calls("POST", "/backend/project_y/profile/username/check")


async def test_username_taken_is_retried(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account(username=None)
    sim.state.inject(
        "POST",
        "/backend/project_y/profile/username/check",
        "custom",
        times=2,
        json={"available": False},
        status=200,
    )
    await add(client, token=acc.access_token)
    assert len(sim.state.calls("POST", "/backend/project_y/profile/username/check")) == 3
    assert acc.username


async def test_country_block_fails_the_add(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account(country_blocked="KP")
    body = await add(client, status=400, token=acc.access_token)
    msg = body["error"]["message"]
    assert "step 'invite/mine'" in msg and "region" in msg and "KP" in msg
    assert body["error"]["code"] == "unsupported_country"


async def test_failed_add_keeps_a_rotated_refresh_token(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account(country_blocked="CN")
    body = await add(client, status=400, rt=acc.refresh_token)
    assert "step 'invite/mine'" in body["error"]["message"]
    assert "kept on token 1, marked invalid" in body["error"]["message"]
    row = client.app[keys.POOL].state(1).row
    assert row["refresh_token"] == acc.refresh_token and row["status"] == "invalid"
    assert acc.refresh_token not in orjson.dumps(body).decode()


async def test_account_without_sora2_is_bootstrapped(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account(sora2=False)
    body = await add(client, token=acc.access_token)
    assert body["token"]["sora2_supported"] is True
    assert len(sim.state.calls("GET", "/backend/project_y/invite/mine")) == 2
    assert len(sim.state.calls("GET", "/backend/m/bootstrap")) == 1


async def test_add_validates_the_body(client: TestClient, sim: Sim) -> None:
    resp = await client.post(
        "/api/tokens", data=b"{nope", headers={**KEY, "Content-Type": "application/json"}
    )
    assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]["message"]
    for body, param in (
        ({"token": 5}, "token"),
        ({"token": "x", "video_concurrency": -2}, "video_concurrency"),
        ({"token": "x", "image_enabled": "yes"}, "image_enabled"),
        ({"token": "x", "proxy": "ftp://h:1"}, "proxy"),
        ({"tokn": "x"}, "tokn"),
        ({}, "token"),
    ):
        resp = await client.post("/api/tokens", json=body, headers=KEY)
        data = await resp.json()
        assert resp.status == 400, data
        assert data["error"]["param"] == param, data
    assert not sim.state.calls("*", "/backend/*")


async def test_routes_need_credentials(client: TestClient) -> None:
    assert (await client.get("/api/tokens")).status == 401
    assert (
        await client.get("/api/tokens", headers={"Authorization": "Bearer wrong"})
    ).status == 401
    # Admin-only routes refuse the API key.
    for method, path in (
        ("GET", "/api/tokens/export"),
        ("POST", "/api/tokens/1/disable"),
        ("POST", "/api/tokens/import"),
        ("POST", "/api/tokens/st2at"),
    ):
        resp = await client.request(method, path, headers=KEY)
        assert resp.status == 401, path
        assert (await resp.json())["error"]["code"] == "admin_auth_required"


# -- listing and secrets ---------------------------------------------------------------------------


async def test_listing_masks_every_secret(
    make_client: MakeClient, sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    # (aiosqlite logs SQL parameters at DEBUG on its own logger; ours must never carry a secret.)
    caplog.set_level(logging.DEBUG, logger="sora2api")
    client = await make_client()
    acc = sim.state.add_account()
    body = await add(client, token=acc.access_token, st=acc.session_token, rt=acc.refresh_token)
    tid = body["token"]["id"]
    await client.post(f"/api/tokens/{tid}/test", headers=KEY)
    await client.app[TOKENS].refresh(tid)
    await client.app[keys.ACCOUNTS].update(
        tid, {"proxy": "http://bob:supersecretpw@proxy.example:8080"}
    )
    resp = await client.get("/api/tokens", headers=KEY)
    text = await resp.text()
    (tok,) = orjson.loads(text)["data"]
    row = client.app[keys.POOL].state(tid).row
    secrets = (
        acc.access_token,
        row["access_token"],
        acc.session_token,
        acc.refresh_token,
        "supersecretpw",
    )
    for secret in secrets:
        assert secret not in text
        assert secret not in caplog.text
    assert tok["access_token"] == "…" + row["access_token"][-4:]
    assert tok["proxy"] == "http://bob:…etpw@proxy.example:8080"
    assert tok["limits"] == {"image": 1, "video": 3} and tok["busy"] == {"image": 0, "video": 0}
    assert tok["available"] == {"image": "available", "video": "available"}
    one = await (await client.get(f"/api/tokens/{tid}", headers=KEY)).json()
    assert one["id"] == tid and acc.access_token not in orjson.dumps(one).decode()


async def test_export_full_secrets_only_for_admin(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    await add(client, token=acc.access_token, st=acc.session_token, remark="r1")
    assert (await client.get("/api/tokens/export", headers=KEY)).status == 401
    admin = await admin_headers(client)
    resp = await client.get("/api/tokens/export", headers=admin)
    assert resp.status == 200
    (item,) = await resp.json()
    assert item["access_token"] == acc.access_token and item["session_token"] == acc.session_token
    assert item["email"] == acc.email and item["is_active"] is True and item["remark"] == "r1"
    resp = await client.get("/api/tokens/export?format=text", headers=admin)
    assert (await resp.text()) == acc.session_token + "\n"
    resp = await client.get("/api/tokens/export?format=xml", headers=admin)
    assert resp.status == 400


# -- test, enable/disable, update, activate, delete --------------------------------------------------


async def test_test_marks_invalid_and_revives(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    sim.state.invalidate(acc)
    res = await (await client.post(f"/api/tokens/{tid}/test", headers=KEY)).json()
    assert res["ok"] is False and res["status"] == "invalid"
    assert res["reason"].startswith("Test failed at step 'me': Token invalid (HTTP 401)")
    (tok,) = await listing(client)
    assert tok["status"] == "invalid" and tok["status_at"] and "invalidated" in tok["status_reason"]
    assert tok["available"]["video"] == "invalid"
    # A new AT (the account signed in again) replaces it and a test says active again.
    await add(client, status=200, token=sim.state.mint_access_token(acc))
    res = await (await client.post(f"/api/tokens/{tid}/test", headers=KEY)).json()
    assert res["ok"] is True and res["status"] == "active" and res["quota_remaining"] == 30


async def test_test_all_reports_each(make_client: MakeClient, sim: Sim) -> None:
    client = await make_client(pool={"test_concurrency": 2})
    accounts = [sim.state.add_account() for _ in range(3)]
    for a in accounts:
        await add(client, token=a.access_token)
    sim.state.inject("GET", "/backend/me", "401_expired", email=accounts[1].email)
    resp = await client.post("/api/tokens/test-all", headers=KEY)
    body = await resp.json()
    assert body["total"] == 3 and body["ok"] == 2
    by_email = {r["email"]: r for r in body["results"]}
    assert by_email[accounts[1].email]["status"] == "expired"
    assert by_email[accounts[0].email]["status"] == "active"


async def test_transient_test_failure_does_not_kill_the_token(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    sim.state.inject("GET", "/backend/me", "502_html")
    res = await (await client.post(f"/api/tokens/{tid}/test", headers=KEY)).json()
    assert res["ok"] is False and res["status"] == "active"
    assert "Sora server error (HTTP 502)" in res["reason"]


async def test_enable_disable(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    admin = await admin_headers(client)
    body = await (await client.post(f"/api/tokens/{tid}/disable", headers=admin)).json()
    assert (
        body["token"]["status"] == "disabled"
        and body["token"]["status_reason"] == "disabled by admin"
    )
    pool = client.app[keys.POOL]
    with pytest.raises(Exception, match="1 disabled"):
        async with pool.lease("video"):
            pass
    await pool.transition(
        tid, lambda _row: {"consecutive_errors": 2, "cooldown_until": 1e12, "cooldown_level": 3}
    )
    body = await (await client.post(f"/api/tokens/{tid}/enable", headers=admin)).json()
    tok = body["token"]
    assert (
        tok["status"] == "active"
        and tok["consecutive_errors"] == 0
        and tok["cooldown_until"] is None
    )
    async with pool.lease("video") as lease:
        assert lease.token_id == tid


async def test_update_limits_and_proxy(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    admin = await admin_headers(client)
    resp = await client.put(
        f"/api/tokens/{tid}",
        json={
            "video_concurrency": 1,
            "image_concurrency": None,
            "proxy": "socks5://u:pw123456789@h:1080",
            "remark": "slow",
            "image_enabled": False,
        },
        headers=admin,
    )
    tok = (await resp.json())["token"]
    assert resp.status == 200
    assert tok["video_concurrency"] == 1 and tok["limits"] == {"image": 1, "video": 1}
    assert tok["proxy"] == "socks5://u:…6789@h:1080" and tok["remark"] == "slow"
    assert tok["image_enabled"] is False and tok["available"]["image"] == "image disabled"
    assert client.app[keys.POOL].state(tid).row["proxy"] == "socks5://u:pw123456789@h:1080"
    # The POST alias, and bad values refused without touching what is stored.
    resp = await client.post(f"/api/tokens/{tid}/update", json={"proxy": ""}, headers=admin)
    assert (await resp.json())["token"]["proxy"] == ""
    for bad in (
        {"video_concurrency": 1.5},
        {"video_concurrency": 2**63},  # beyond SQLite's INTEGER: a 400, not a 500
        {"proxy": "nonsense"},
        {"email": "x@y"},
        {},
    ):
        resp = await client.put(f"/api/tokens/{tid}", json=bad, headers=admin)
        assert resp.status == 400, bad
    row = client.app[keys.POOL].state(tid).row
    assert row["video_concurrency"] == 1 and row["proxy"] == "" and row["email"] == acc.email


async def test_activate_with_invite_code(make_client: MakeClient, sim: Sim) -> None:
    client = await make_client()
    sim.state.settings.bootstrap_activates = False
    acc = sim.state.add_account(sora2=False)
    tok = (await add(client, token=acc.access_token))["token"]
    assert tok["sora2_supported"] is False and tok["available"]["video"] == "without Sora-2"
    admin = await admin_headers(client)
    resp = await client.post(
        f"/api/tokens/{tok['id']}/activate", json={"invite_code": "WRONG1"}, headers=admin
    )
    body = await resp.json()
    assert resp.status == 400 and "Invalid invite code" in body["error"]["message"]
    resp = await client.post(
        f"/api/tokens/{tok['id']}/activate?invite_code=SORA2SIM", headers=admin
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["ok"] is True and body["sora2_supported"] is True and body["quota_remaining"] == 30
    calls = sim.state.calls("POST", "/backend/project_y/invite/accept")
    assert [c.json for c in calls] == [{"invite_code": "WRONG1"}, {"invite_code": "SORA2SIM"}]


async def test_delete_and_404(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    resp = await client.delete(f"/api/tokens/{tid}", headers=KEY)
    assert resp.status == 200 and (await resp.json())["deleted"] == tid
    assert await listing(client) == []
    resp = await client.delete(f"/api/tokens/{tid}", headers=KEY)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/api/tokens/abc", headers=KEY)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "id"
    resp = await client.post("/api/tokens/999/test", headers=KEY)
    assert resp.status == 404


# -- conversions, proxy test --------------------------------------------------------------------------


async def test_st2at_and_rt2at_convert_without_storing(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    admin = await admin_headers(client)
    body = await (
        await client.post("/api/tokens/st2at", json={"st": acc.session_token}, headers=admin)
    ).json()
    assert body["email"] == acc.email and body["access_token"] in sim.state.tokens
    old_rt = acc.refresh_token
    body = await (await client.post("/api/tokens/rt2at", json={"rt": old_rt}, headers=admin)).json()
    assert body["refresh_token"] == acc.refresh_token != old_rt and body["refresh_token_rotated"]
    assert await listing(client) == []
    resp = await client.post("/api/tokens/rt2at", json={"rt": old_rt}, headers=admin)
    msg = (await resp.json())["error"]["message"]
    assert (
        resp.status == 400
        and msg.startswith("Converting the refresh token failed")
        and "already been used" in msg
    )


async def test_rt2at_of_a_stored_token_keeps_it_working(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, rt=acc.refresh_token))["token"]["id"]
    stored_rt = client.app[keys.POOL].state(tid).row["refresh_token"]
    admin = await admin_headers(client)
    body = await (
        await client.post("/api/tokens/rt2at", json={"rt": stored_rt}, headers=admin)
    ).json()
    assert body["updated_token_id"] == tid
    assert client.app[keys.POOL].state(tid).row["refresh_token"] == acc.refresh_token


async def test_test_proxy(
    client: TestClient, sim: Sim, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    seen: list[str] = []

    async def any_request(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.Response(status=403, text="proxy says no")

    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{tail:.*}", any_request)
    proxy = await aiohttp_server(proxy_app)
    url = f"http://user:pass1234567@127.0.0.1:{proxy.port}"
    # It makes the server connect anywhere: an API key is not enough.
    refused = await client.post("/api/tokens/test-proxy", json={"proxy": url}, headers=KEY)
    assert refused.status == 401 and not seen
    admin = await admin_headers(client)
    body = await (
        await client.post("/api/tokens/test-proxy", json={"proxy": url}, headers=admin)
    ).json()
    assert (
        body["ok"] is True
        and body["latency_ms"] >= 0
        and "pass1234567" not in orjson.dumps(body).decode()
    )
    assert seen and seen[0].startswith(sim.url + "/backend")
    await proxy.close()
    body = await (
        await client.post("/api/tokens/test-proxy", json={"proxy": url}, headers=admin)
    ).json()
    assert body["ok"] is False and "connect" in body["error"].lower()
    resp = await client.post("/api/tokens/test-proxy", json={"proxy": "gopher://x"}, headers=admin)
    assert resp.status == 400


async def test_a_token_proxy_needs_an_admin_session(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    body = {"token": acc.access_token, "proxy": "http://127.0.0.1:9"}
    refused = await client.post("/api/tokens", json=body, headers=KEY)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "admin_required"
    assert not client.app[keys.POOL].tokens()  # nothing stored
    # an admin may: the add then really goes through that (dead) proxy and says so
    tried = await client.post("/api/tokens", json=body, headers=await admin_headers(client))
    msg = (await tried.json())["error"]["message"]
    assert tried.status == 502 and "step 'me'" in msg and "127.0.0.1', 9" in msg


# -- import -----------------------------------------------------------------------------------------


async def test_import_text_per_line_results(client: TestClient, sim: Sim) -> None:
    a, b, c, d = (sim.state.add_account() for _ in range(4))
    sim.state.expire_session(d)
    text = "\n".join(
        [
            "# my tokens",
            a.access_token,  # 2: created
            b.session_token,  # 3: created
            "",
            c.refresh_token,  # 5: created
            "garbage.with.dots",  # 6: error
            a.access_token,  # 7: duplicate credential
            sim.state.mint_access_token(a),  # 8: duplicate account
            d.session_token,  # 9: error (session expired)
            "st:" + c.session_token,  # 10: duplicate account of line 5 (found after conversion)
        ]
    )
    admin = await admin_headers(client)
    resp = await client.post(
        "/api/tokens/import", data=text.encode(), headers={**admin, "Content-Type": "text/plain"}
    )
    body = await resp.json()
    assert resp.status == 200, body
    got = {r["line"]: (r["kind"], r["result"]) for r in body["results"]}
    assert got == {
        2: ("at", "created"),
        3: ("st", "created"),
        5: ("rt", "created"),
        6: (None, "error"),
        7: ("at", "duplicate"),
        8: ("at", "duplicate"),
        9: ("st", "error"),
        10: ("st", "duplicate"),
    }
    msgs = {r["line"]: r["message"] for r in body["results"]}
    assert "line 2" in msgs[7] and "line 2" in msgs[8] and "line 5" in msgs[10]
    assert "auth/session" in msgs[9]
    assert body["summary"] == {"created": 3, "updated": 0, "duplicate": 3, "error": 2}
    emails = sorted(t["email"] for t in await listing(client))
    assert emails == sorted([a.email, b.email, c.email])


async def test_import_json_upserts(client: TestClient, sim: Sim) -> None:
    a, b = sim.state.add_account(), sim.state.add_account()
    await add(client, token=a.access_token, remark="old")
    admin = await admin_headers(client)
    data = [
        {
            "email": a.email,
            "access_token": sim.state.mint_access_token(a),
            "remark": "new",
            "image_concurrency": -1,
            "video_concurrency": 2,
            "is_active": True,
        },
        {
            "email": b.email,
            "access_token": b.access_token,
            "session_token": b.session_token,
            "is_active": False,
            "proxy": "",
        },
        {"email": "x@y", "access_token": "bad"},
        "not an object",
        {"remark": "no credentials"},
    ]
    resp = await client.post(
        "/api/tokens/import", json={"format": "json", "data": data}, headers=admin
    )
    body = await resp.json()
    assert [r["result"] for r in body["results"]] == [
        "updated",
        "created",
        "error",
        "error",
        "error",
    ]
    assert "Invalid access token" in body["results"][2]["message"]
    toks = {t["email"]: t for t in await listing(client)}
    assert toks[a.email]["remark"] == "new" and toks[a.email]["video_concurrency"] == 2
    assert toks[a.email]["image_concurrency"] is None
    assert toks[b.email]["status"] == "disabled" and toks[b.email]["has_session_token"]
    # Round trip: what export writes, import reads back as updates.
    exported = await (await client.get("/api/tokens/export", headers=admin)).json()
    resp = await client.post("/api/tokens/import", json=exported, headers=admin)
    assert [r["result"] for r in (await resp.json())["results"]] == ["updated", "updated"]


async def test_import_body_errors(client: TestClient) -> None:
    admin = await admin_headers(client)
    for payload in (
        {"format": "yaml", "data": "x"},
        {"format": "text", "data": [1]},
        {"nothing": 1},
    ):
        resp = await client.post("/api/tokens/import", json=payload, headers=admin)
        assert resp.status == 400, payload


# -- refresh ---------------------------------------------------------------------------------------


async def wait_for(cond: Callable[[], bool]) -> None:
    for _ in range(250):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met within 5 s")


async def test_background_refresh_renews_tokens_near_expiry(
    make_client: MakeClient, sim: Sim
) -> None:
    client = await make_client(pool={"refresh_interval": 0.05, "refresh_window": 7200.0})
    soon = sim.state.add_account(at_ttl=3600)
    later = sim.state.add_account(at_ttl=30 * 86400)
    t_soon = (await add(client, token=soon.access_token, rt=soon.refresh_token))["token"]["id"]
    t_later = (await add(client, token=later.access_token, st=later.session_token))["token"]["id"]
    pool = client.app[keys.POOL]
    await wait_for(lambda: pool.state(t_soon).row["access_token"] != soon.access_token)
    row = pool.state(t_soon).row
    assert row["refresh_token"] == soon.refresh_token  # rotated and stored
    assert row["status"] == "active" and row["at_expires"] > 0
    assert pool.state(t_later).row["access_token"] == later.access_token
    assert not sim.state.calls("GET", "/api/auth/session")


async def test_failed_refresh_marks_expired_with_reason(make_client: MakeClient, sim: Sim) -> None:
    client = await make_client(pool={"refresh_interval": 0.05, "refresh_window": 60.0})
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token, rt=acc.refresh_token))["token"]["id"]
    sim.state.invalidate(acc, sessions=True)  # the RT stops working
    pool = client.app[keys.POOL]
    # Only a lapsed access token makes a failed refresh count (see test_token_status.py).
    await pool.update_row(tid, {"at_expires": time.time() - 60})
    await wait_for(lambda: pool.state(tid).row["status"] == "expired")
    (tok,) = await listing(client)
    assert tok["status_reason"].startswith(
        "Refresh failed: refresh token: Sora rejected the request (HTTP 400)"
    )
    assert "invalid_grant" in tok["status_reason"] and tok["status_at"]
    assert tok["refresh_error"] == tok["status_reason"] and tok["refresh_error_at"]
    assert tok["status"] == "expired"  # kept, not deleted, not disabled
    # the dead refresh token is dropped, so nothing hammers the auth host with it
    assert tok["has_refresh_token"] is False
    tries = len(sim.state.calls("POST", "/oauth/token"))
    await client.app[TOKENS].refresh_due()
    assert len(sim.state.calls("POST", "/oauth/token")) == tries == 1


async def test_manual_refresh_via_session_token(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token, st=acc.session_token))["token"]["id"]
    admin = await admin_headers(client)
    body = await (await client.post(f"/api/tokens/{tid}/refresh", json={}, headers=admin)).json()
    assert body["ok"] is True and body["refresh_token_rotated"] is False
    assert client.app[keys.POOL].state(tid).row["access_token"] != acc.access_token
    only_at = sim.state.add_account()
    tid2 = (await add(client, token=only_at.access_token))["token"]["id"]
    resp = await client.post(f"/api/tokens/{tid2}/refresh", headers=admin)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "no_refresh_credential"


async def test_cancelled_refresh_still_stores_the_rotated_token(
    client: TestClient, sim: Sim
) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, rt=acc.refresh_token))["token"]["id"]
    before = acc.refresh_token
    sim.state.inject("POST", "/oauth/token", "slow_first_byte", seconds=0.2)
    task = asyncio.create_task(client.app[TOKENS].refresh(tid))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool = client.app[keys.POOL]
    await wait_for(lambda: pool.state(tid).row["refresh_token"] != before)
    assert pool.state(tid).row["refresh_token"] == acc.refresh_token


async def test_listing_shows_a_lapsed_access_token_as_expired(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account()
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    await client.app[keys.POOL].update_row(tid, {"at_expires": 1000.0})
    (tok,) = await listing(client)
    assert tok["status"] == "expired" and tok["status_at"] == 1000.0
    assert tok["status_reason"].endswith("add a fresh one")
    assert tok["available"] == {"image": "expired", "video": "expired"}


async def test_refresh_quota_sets_reset(client: TestClient, sim: Sim) -> None:
    acc = sim.state.add_account(quota=0)
    tid = (await add(client, token=acc.access_token))["token"]["id"]
    res = await client.app[TOKENS].refresh_quota(tid)
    assert res["ok"] is True and res["quota_remaining"] == 0 and res["quota_resets_at"] > 0
    (tok,) = await listing(client)
    assert tok["available"]["video"] == "out of quota" and tok["available"]["image"] == "available"


# -- pure functions ------------------------------------------------------------------------------------


def test_classify_credential_rules() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJlbWFpbCI6ImFAYi5jIn0.sig"
    assert classify_credential(jwt) == ("at", jwt)
    assert classify_credential("  rt_abcdefghijklmnopqrstuvwxyz  ")[0] == "rt"
    assert classify_credential("v1.MRjRkabcdef")[0] == "rt"
    assert classify_credential("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..iv.ct.tag")[0] == "st"
    assert classify_credential("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..opaque")[0] == "st"
    assert classify_credential("x" * 250)[0] == "st"
    assert classify_credential("A" * 40)[0] == "rt"
    assert classify_credential("st: whatever-it-is") == ("st", "whatever-it-is")
    assert classify_credential("AT=abc") == ("at", "abc")
    for bad in ("short", "a.b.c", "has space inside", "one.dot.too.many"):
        with pytest.raises(ValueError):
            classify_credential(bad)


def test_parse_text_skips_blanks_and_comments() -> None:
    items = parse_text("\n# c\n  rt_" + "a" * 30 + "\nbad\n")
    assert [(i.line, i.kind, bool(i.error)) for i in items] == [(3, "rt", False), (4, "", True)]


def test_mask_proxy_and_quota_values() -> None:
    assert mask_proxy("http://h:1") == "http://h:1"
    assert mask_proxy("socks5h://me:longpassword@h:1080") == "socks5h://me:…word@h:1080"
    assert mask_proxy("") == ""
    assert quota_values(
        {"estimated_num_videos_remaining": 5, "access_resets_in_seconds": 10}, 100.0
    ) == {
        "quota_remaining": 5,
        "quota_resets_at": 110.0,
    }
    assert quota_values(
        {"estimated_num_videos_remaining": 3, "rate_limit_reached": True}, 100.0
    ) == {
        "quota_remaining": 0,
        "quota_resets_at": 3700.0,
    }
    assert quota_values({}, 1.0) == {"quota_remaining": None, "quota_resets_at": None}
