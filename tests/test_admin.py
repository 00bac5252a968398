"""The admin API: login and sessions, credentials, settings, request log, stats, jobs, characters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.auth import mask
from sora2api.reqlog import REQLOG
from sora2api.retention import RETENTION
from sora2api.simulator import mp4_bytes

from .conftest import API_KEY, KEY, Sim
from .helpers import add_token, chat, data_url, final_result, read_sse

PASSWORD = "first-pass-123"
MakeClient = Callable[..., Awaitable[TestClient]]


async def login(
    client: TestClient, password: str = PASSWORD, username: str = "admin"
) -> dict[str, str]:
    resp = await client.post("/api/login", json={"username": username, "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    return {"Authorization": f"Bearer {body['token']}"}


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture
async def admin(make_client: MakeClient) -> TestClient:
    """The app with a non-default admin password (no forced change)."""
    return await make_client(auth={"api_key": API_KEY, "admin_password": PASSWORD})


@pytest.fixture
async def session(admin: TestClient) -> dict[str, str]:
    return await login(admin)


# -- login, sessions ---------------------------------------------------------------------------


async def test_login_shape_and_cookie(admin: TestClient) -> None:
    resp = await admin.post("/api/login", json={"username": "admin", "password": PASSWORD})
    body = await resp.json()
    assert resp.status == 200
    assert body["success"] is True and body["must_change_password"] is False
    assert len(body["token"]) > 30 and body["expires_at"] > time.time() + 23 * 3600
    cookie = resp.cookies["sora2api_session"]
    assert cookie.value == body["token"]
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    # The cookie alone is a session (the panel never handles the token itself).
    me = await admin.get("/api/admin/me", headers={"Cookie": f"sora2api_session={body['token']}"})
    assert me.status == 200
    data = await me.json()
    assert data["username"] == "admin" and data["must_change_password"] is False
    assert data["api_key"] == mask(API_KEY)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"username": "admin", "password": "wrong"}, 401, None),
        ({"username": "root", "password": PASSWORD}, 401, None),
        ({"username": "admin"}, 400, "password"),
        ({"password": PASSWORD}, 400, "username"),
        ({"username": "admin", "password": 5}, 400, "password"),
    ],
)
async def test_login_failures(
    admin: TestClient, body: dict[str, Any], status: int, param: str | None
) -> None:
    resp = await admin.post("/api/login", json=body)
    assert resp.status == status
    err = _envelope(await resp.json())
    assert err["param"] == param
    if status == 401:
        assert err["code"] == "invalid_credentials"
        assert "sora2api_session" not in resp.cookies


async def test_login_rate_limit(make_client: MakeClient) -> None:
    client = await make_client(auth={"admin_password": PASSWORD, "login_attempts_per_minute": 3})
    for _ in range(3):
        resp = await client.post("/api/login", json={"username": "admin", "password": "nope"})
        assert resp.status == 401
    # Even the right password is refused until the window passes.
    resp = await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
    assert resp.status == 429
    err = _envelope(await resp.json())
    assert err["code"] == "rate_limit_exceeded" and "Too many failed logins" in err["message"]


async def _fail_login(client: TestClient, forwarded: str) -> int:
    resp = await client.post(
        "/api/login",
        json={"username": "admin", "password": "nope"},
        headers={"X-Forwarded-For": forwarded},
    )
    return resp.status


async def test_rate_limit_sees_the_real_client_behind_a_trusted_proxy(
    make_client: MakeClient,
) -> None:
    client = await make_client(
        auth={"admin_password": PASSWORD, "login_attempts_per_minute": 2},
        server={"trusted_proxies": "127.0.0.1, 10.9.9.9"},
    )
    assert [await _fail_login(client, "203.0.113.7") for _ in range(3)] == [401, 401, 429]
    # another client behind the same nginx is not locked out
    assert await _fail_login(client, "203.0.113.8") == 401
    # a client cannot dodge the limit by forging an earlier hop: nginx appends the real one last
    assert await _fail_login(client, "1.2.3.4, 203.0.113.7") == 429


async def test_forwarded_header_is_ignored_from_untrusted_peers(make_client: MakeClient) -> None:
    client = await make_client(auth={"admin_password": PASSWORD, "login_attempts_per_minute": 2})
    statuses = [await _fail_login(client, f"198.51.100.{i}") for i in range(3)]
    assert statuses == [401, 401, 429]  # every forged address counts as the one real peer


async def test_session_expires(make_client: MakeClient) -> None:
    client = await make_client(auth={"admin_password": PASSWORD, "session_ttl_hours": 0.0001})
    headers = await login(client)
    assert (await client.get("/api/admin/me", headers=headers)).status == 200
    await asyncio.sleep(0.5)  # 0.0001 h = 0.36 s
    resp = await client.get("/api/admin/me", headers=headers)
    assert resp.status == 401
    assert _envelope(await resp.json())["code"] == "admin_auth_required"


async def test_logout_revokes(admin: TestClient, session: dict[str, str]) -> None:
    other = await login(admin)
    resp = await admin.post("/api/logout", headers=session)
    assert resp.status == 200 and (await resp.json()) == {"success": True}
    assert resp.cookies["sora2api_session"].value == ""  # the cookie is cleared too
    assert (await admin.get("/api/admin/me", headers=session)).status == 401
    assert (await admin.get("/api/admin/me", headers=other)).status == 200


async def test_password_change_revokes_every_session(
    admin: TestClient, session: dict[str, str]
) -> None:
    other = await login(admin)
    bad = await admin.post(
        "/api/admin/password",
        json={"old_password": "nope", "new_password": "x" * 10},
        headers=session,
    )
    assert bad.status == 400 and _envelope(await bad.json())["param"] == "old_password"
    short = await admin.post(
        "/api/admin/password", json={"old_password": PASSWORD, "new_password": "x"}, headers=session
    )
    assert short.status == 400 and _envelope(await short.json())["param"] == "new_password"
    missing = await admin.post(
        "/api/admin/password", json={"old_password": PASSWORD}, headers=session
    )
    assert missing.status == 400 and _envelope(await missing.json())["param"] == "new_password"

    resp = await admin.post(
        "/api/admin/password",
        json={"old_password": PASSWORD, "new_password": "second-pass-456", "username": "boss"},
        headers=session,
    )
    body = await resp.json()
    assert resp.status == 200 and body["relogin"] is True and "log in again" in body["message"]
    for headers in (session, other):
        assert (await admin.get("/api/admin/me", headers=headers)).status == 401
    old = await admin.post("/api/login", json={"username": "admin", "password": PASSWORD})
    assert old.status == 401
    fresh = await login(admin, "second-pass-456", username="boss")
    me = await (await admin.get("/api/admin/me", headers=fresh)).json()
    assert me["username"] == "boss"


async def test_default_password_warns_and_forces_a_change(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sora2api.auth"):
        client = await make_client()  # admin / admin
    assert any("admin password is still the default" in r.getMessage() for r in caplog.records)

    resp = await client.post("/api/login", json={"username": "admin", "password": "admin"})
    body = await resp.json()
    assert body["must_change_password"] is True
    headers = {"Authorization": f"Bearer {body['token']}"}
    for method, path in (
        ("GET", "/api/stats"),
        ("GET", "/api/logs"),
        ("GET", "/api/tokens"),
        ("PUT", "/api/admin/settings"),
        ("POST", "/api/admin/apikey"),
    ):
        resp = await client.request(method, path, headers=headers, json={})
        assert resp.status == 403, path
        assert _envelope(await resp.json())["code"] == "password_change_required"
    me = await client.get("/api/admin/me", headers=headers)
    assert me.status == 200 and (await me.json())["must_change_password"] is True
    # The API key keeps working on key_or_admin routes: only sessions are held back.
    assert (await client.get("/api/tokens", headers=KEY)).status == 200

    resp = await client.post(
        "/api/admin/password",
        json={"old_password": "admin", "new_password": "a-real-password"},
        headers=headers,
    )
    assert resp.status == 200
    headers = await login(client, "a-real-password")
    assert (await client.get("/api/stats", headers=headers)).status == 200
    me = await (await client.get("/api/admin/me", headers=headers)).json()
    assert me["must_change_password"] is False


async def test_logout_allowed_during_forced_change(client: TestClient) -> None:
    headers = await login(client, "admin")
    assert (await client.post("/api/logout", headers=headers)).status == 200
    assert (await client.get("/api/admin/me", headers=headers)).status == 401


# -- API key -----------------------------------------------------------------------------------


async def test_api_key_change_is_immediate_and_persisted(
    admin: TestClient, session: dict[str, str], make_client: MakeClient
) -> None:
    bad = await admin.post("/api/admin/apikey", json={"api_key": "short"}, headers=session)
    assert bad.status == 400 and _envelope(await bad.json())["param"] == "api_key"
    empty = await admin.post("/api/admin/apikey", json={}, headers=session)
    assert empty.status == 400 and _envelope(await empty.json())["param"] == "api_key"

    new_key = "brand-new-key-987654"
    resp = await admin.post("/api/admin/apikey", json={"api_key": new_key}, headers=session)
    body = await resp.json()
    assert resp.status == 200 and body == {"success": True, "api_key": mask(new_key)}
    assert (await admin.get("/v1/models", headers=KEY)).status == 401
    new = {"Authorization": f"Bearer {new_key}"}
    assert (await admin.get("/v1/models", headers=new)).status == 200
    # A restart on the same database keeps the panel's key over config.toml's.
    again = await make_client(auth={"api_key": API_KEY, "admin_password": PASSWORD})
    assert (await again.get("/v1/models", headers=new)).status == 200
    assert (await again.get("/v1/models", headers=KEY)).status == 401


# -- settings ----------------------------------------------------------------------------------


async def test_settings_describe(admin: TestClient, session: dict[str, str]) -> None:
    body = await (await admin.get("/api/admin/settings", headers=session)).json()
    assert body["precedence"] == "environment > panel > config.toml"
    fields = {f["key"]: f for f in body["settings"]}
    fmt = fields["generation.content_format"]
    assert fmt["value"] == "json" and fmt["source"] == "config" and fmt["locked"] is False
    assert fields["generation.watermark_custom_token"]["secret"] is True


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({"generation.content_format": "html"}, "generation.content_format"),
        ({"auth.api_key": "abcdefghijk"}, "auth.api_key"),
        ({"upstream.poll_interval": "fast"}, "upstream.poll_interval"),
        ({"storage.media_ttl": -5}, "storage.media_ttl"),
        ({"server.host": "0.0.0.0"}, "server.host"),
    ],
)
async def test_settings_bad_values_are_400_naming_the_key(
    admin: TestClient, session: dict[str, str], values: dict[str, Any], param: str
) -> None:
    # A valid value next to the bad one is not applied either: all or nothing.
    resp = await admin.put(
        "/api/admin/settings",
        json={"values": {"pool.video_concurrency": 7, **values}},
        headers=session,
    )
    assert resp.status == 400
    err = _envelope(await resp.json())
    assert err["param"] == param and param.split(".")[1] in err["message"]
    assert admin.app[keys.SETTINGS].current.pool.video_concurrency == 3


async def test_settings_body_must_have_values(admin: TestClient, session: dict[str, str]) -> None:
    for body in ({}, {"values": []}, {"values": {}}):
        resp = await admin.put("/api/admin/settings", json=body, headers=session)
        assert resp.status == 400 and _envelope(await resp.json())["param"] == "values"


async def test_settings_change_takes_effect_at_once(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(admin, sim.state.add_account())
    resp = await admin.put(
        "/api/admin/settings",
        json={"values": {"generation.content_format": "markdown", "upstream.poll_interval": 0.06}},
        headers=session,
    )
    body = await resp.json()
    assert resp.status == 200 and sorted(body["changed"]) == [
        "generation.content_format",
        "upstream.poll_interval",
    ]
    fields = {f["key"]: f for f in body["settings"]}
    assert fields["generation.content_format"] == {
        **fields["generation.content_format"],
        "value": "markdown",
        "source": "panel",
    }
    assert fields["upstream.poll_interval"]["value"] == 0.06
    resp = await admin.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    content = (await resp.json())["choices"][0]["message"]["content"]
    assert content.startswith("![Generated Image](http://") and "/tmp/" in content


# -- request log -------------------------------------------------------------------------------


async def test_request_log_records_and_masks(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    sim.state.settings.image_seconds = 20
    account = sim.state.add_account("dave@sim.example")
    await add_token(admin, account)
    assert (await admin.get("/v1/models", headers=KEY)).status == 200
    assert (
        await admin.get("/v1/models", headers={"Authorization": "Bearer wrong-key-zzzz"})
    ).status == 401
    resp = await admin.post("/v1/chat/completions", json=chat("sora-image", "a fox"), headers=KEY)
    assert resp.status == 200
    job_id = (await resp.json())["id"].removeprefix("chatcmpl-")
    assert (
        await admin.get("/api/feed?limit=2&cursor=SECRET-CURSOR&token_id=1", headers=KEY)
    ).status == 400
    assert (await admin.get("/health")).status == 200
    assert (await admin.get("/tmp/nothing.png")).status == 404

    resp = await admin.get("/api/logs?limit=50", headers=session)
    raw = await resp.text()
    body = await resp.json()
    assert resp.status == 200 and body["limit"] == 50 and body["offset"] == 0
    logs = body["logs"]
    assert body["total"] == len(logs)
    paths = [entry["path"] for entry in logs]
    assert "/health" not in paths and not any(p.startswith("/tmp/") for p in paths)
    assert "/api/feed" in paths and not any("?" in p for p in paths)
    assert "SECRET-CURSOR" not in raw

    models = [e for e in logs if e["path"] == "/v1/models"]
    # the successful listing is folded into a counted row written at flush time
    assert sorted(e["status"] for e in models) == [200, 401]
    by_status = {e["status"]: e for e in models}
    assert by_status[200]["key_hint"] == mask(API_KEY)
    assert by_status[401]["key_hint"] == mask("wrong-key-zzzz")
    assert models[1]["method"] == "GET" and models[1]["duration_ms"] >= 0 and models[1]["client"]

    (gen,) = [e for e in logs if e["path"] == "/v1/chat/completions"]
    assert gen["model"] == "sora-image" and gen["job_id"] == job_id and gen["status"] == 200
    assert gen["token_id"] == 1 and gen["job_status"] == "completed" and gen["job_error"] is None
    assert gen["token_email"] == "d***@sim.example"

    # The admin call that is listing shows the session's user, never its token.
    (login_entry,) = [e for e in logs if e["path"] == "/api/login"]
    assert login_entry["key_hint"] == ""
    for secret in (
        API_KEY,
        session["Authorization"][7:],
        account.access_token,
        account.email,
        PASSWORD,
    ):
        assert secret not in raw
    latest = await (await admin.get("/api/logs?limit=1", headers=session)).json()
    assert (
        latest["logs"][0]["path"] == "/api/logs" and latest["logs"][0]["key_hint"] == "admin:admin"
    )
    paged = await (await admin.get("/api/logs?limit=1&offset=2", headers=session)).json()
    # two /api/logs calls since the first listing: offset 2 is that listing's newest row
    assert [e["id"] for e in paged["logs"]] == [logs[0]["id"]] and paged["total"] == len(logs) + 2


async def test_request_log_shows_a_failed_job(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(admin, sim.state.add_account())
    sim.state.scenario("fail", target="image", message="upstream exploded")
    resp = await admin.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    assert resp.status >= 400
    logs = (await (await admin.get("/api/logs", headers=session)).json())["logs"]
    (gen,) = [e for e in logs if e["path"] == "/v1/chat/completions"]
    assert gen["status"] == resp.status and gen["job_status"] == "failed"
    assert "upstream exploded" in gen["job_error"]


@pytest.mark.parametrize(
    ("query", "param"), [("limit=0", "limit"), ("limit=x", "limit"), ("offset=-1", "offset")]
)
async def test_logs_bad_query(
    admin: TestClient, session: dict[str, str], query: str, param: str
) -> None:
    resp = await admin.get(f"/api/logs?{query}", headers=session)
    assert resp.status == 400 and _envelope(await resp.json())["param"] == param


async def test_request_log_retention(make_client: MakeClient) -> None:
    client = await make_client(storage={"log_max_rows": 5, "log_max_days": 1})
    # The start-up retention pass runs in the background: let it finish before adding rows.
    await asyncio.wait_for(client.app[RETENTION].passed.wait(), 10)
    for _ in range(8):
        await client.get("/v1/models/sora-image", headers=KEY)
    reqlog = client.app[REQLOG]
    store = client.app[keys.STORE]
    await reqlog.flush()
    await store.execute(
        "INSERT INTO request_logs (ts, method, path, status, duration_ms) VALUES (?, 'GET', '/v1/old', 200, 1)",
        (time.time() - 2 * 86400,),
    )
    assert (await store.fetchone("SELECT COUNT(*) AS n FROM request_logs"))["n"] == 9
    deleted = await reqlog.prune()
    assert deleted == 4
    rows = await store.fetchall("SELECT path, ts FROM request_logs ORDER BY id")
    assert len(rows) == 5 and all(r["path"] == "/v1/models/sora-image" for r in rows)


async def test_request_log_writer_batches_in_the_background(client: TestClient) -> None:
    store = client.app[keys.STORE]
    await asyncio.gather(*(client.get("/v1/models/sora-image", headers=KEY) for _ in range(20)))
    for _ in range(40):  # written by the background task without anyone flushing
        row = await store.fetchone("SELECT COUNT(*) AS n FROM request_logs")
        if row and row["n"] == 20:
            break
        await asyncio.sleep(0.05)
    assert row is not None and row["n"] == 20


# -- stats -------------------------------------------------------------------------------------


async def test_admin_stats(admin: TestClient, session: dict[str, str], sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(admin, sim.state.add_account())
    await admin.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    sim.state.scenario("fail", target="image")
    await admin.post("/v1/chat/completions", json=chat("sora-image", "y"), headers=KEY)
    body = await (await admin.get("/api/stats", headers=session)).json()
    assert body["images"] == {"total": 1, "today": 1}
    assert body["errors"] == {"total": 1, "today": 1}
    assert body["videos"]["total"] == 0 and body["characters"]["total"] == 0
    assert body["tokens"]["total"] == 1 and body["tokens"]["by_status"] == {"active": 1}
    assert body["jobs"] == {"running": 0, "queued": 0, "cancelled": 0}
    assert body["requests"]["total"] >= 4 and body["requests"]["today"] == body["requests"]["total"]


# -- jobs --------------------------------------------------------------------------------------


async def test_jobs_list_and_detail(admin: TestClient, session: dict[str, str], sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    account = sim.state.add_account("erin@sim.example")
    await add_token(admin, account)
    resp = await admin.post(
        "/v1/chat/completions", json=chat("sora-image", "a red fox"), headers=KEY
    )
    job_id = (await resp.json())["id"].removeprefix("chatcmpl-")

    body = await (await admin.get("/api/jobs", headers=session)).json()
    assert body["count"] == 1
    (job,) = body["jobs"]
    assert job["id"] == job_id and job["kind"] == "image" and job["api"] == "chat"
    assert job["model"] == "sora-image" and job["status"] == "completed" and job["progress"] == 100
    assert job["token_id"] == 1 and job["token_email"] == "e***@sim.example"
    assert job["prompt"] == "a red fox" and job["error"] is None
    assert len(job["result_urls"]) == 1 and "/tmp/" in job["result_urls"][0]
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]
    assert account.access_token not in await (await admin.get("/api/jobs", headers=session)).text()

    detail = await (await admin.get(f"/api/jobs/{job_id}", headers=session)).json()
    assert detail["request"]["prompt"] == "a red fox" and detail["events"]
    assert (await (await admin.get("/api/jobs?status=failed", headers=session)).json())[
        "count"
    ] == 0
    assert (
        await (await admin.get("/api/jobs?kind=image&status=completed", headers=session)).json()
    )["count"] == 1

    missing = await admin.get("/api/jobs/img_nope", headers=session)
    assert missing.status == 404 and _envelope(await missing.json())["param"] == "id"
    for query, param in (("status=done", "status"), ("kind=audio", "kind"), ("limit=501", "limit")):
        resp = await admin.get(f"/api/jobs?{query}", headers=session)
        assert resp.status == 400 and _envelope(await resp.json())["param"] == param


async def test_cancel_stops_the_job_and_frees_the_slot(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    sim.state.settings.video_seconds = 60
    await add_token(admin, sim.state.add_account())
    sim.state.scenario("success", target="video", plateau=True)  # stuck at 0 % forever
    pool = admin.app[keys.POOL]
    request = asyncio.create_task(
        admin.post("/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=KEY)
    )
    job: dict[str, Any] = {}
    for _ in range(100):
        jobs = (await (await admin.get("/api/jobs?status=active", headers=session)).json())["jobs"]
        if jobs and jobs[0]["token_id"] and sim.state.calls("GET", "/backend/nf/pending*"):
            job = jobs[0]
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "in_progress"
    assert pool.busy(1, "video") == 1
    assert (await (await admin.get("/api/stats", headers=session)).json())["jobs"]["running"] == 1

    resp = await admin.post(f"/api/jobs/{job['id']}/cancel", headers=session)
    body = await resp.json()
    assert resp.status == 200 and body["success"] is True
    assert body["job"]["status"] == "cancelled" and body["job"]["error"]["code"] == "cancelled"
    assert pool.busy(1, "video") == 0
    row = await admin.app[keys.STORE].fetchone("SELECT status FROM jobs WHERE id = ?", (job["id"],))
    assert row == {"status": "cancelled"}
    waiting = await request
    assert waiting.status == 409 and _envelope(await waiting.json())["code"] == "job_cancelled"
    # Polling really stopped.
    polls = len(sim.state.calls("GET", "/backend/nf/pending*"))
    await asyncio.sleep(0.3)
    assert len(sim.state.calls("GET", "/backend/nf/pending*")) == polls

    again = await admin.post(f"/api/jobs/{job['id']}/cancel", headers=session)
    assert again.status == 409 and _envelope(await again.json())["code"] == "job_not_running"
    missing = await admin.post("/api/jobs/video_nope/cancel", headers=session)
    assert missing.status == 404


# -- characters --------------------------------------------------------------------------------


async def _make_character(client: TestClient, sim: Sim, username: str) -> dict[str, Any]:
    sim.state.settings.cameo_seconds = 20
    body = chat(
        "sora-video-10s",
        [{"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}}],
        stream=True,
        character_options={"username": username},
    )
    frames, _ = await read_sse(await client.post("/v1/chat/completions", json=body, headers=KEY))
    return final_result(frames)


async def test_characters_list_visibility_delete(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    account = sim.state.add_account("fay@sim.example")
    await add_token(admin, account)
    made = await _make_character(admin, sim, "fay_cat")

    body = await (await admin.get("/api/characters", headers=session)).json()
    assert body["count"] == 1
    (char,) = body["characters"]
    assert char["character_id"] == made["character_id"] and char["cameo_id"] == made["cameo_id"]
    assert (
        char["username"] == "fay_cat"
        and char["visibility"] == "public"
        and char["deleted"] is False
    )
    assert char["token_id"] == 1 and char["token_email"] == "f***@sim.example" and char["job_id"]
    by_token = await (await admin.get("/api/characters/by-token/1", headers=session)).json()
    assert by_token["characters"] == body["characters"]
    assert (await (await admin.get("/api/characters?token_id=1", headers=session)).json())[
        "count"
    ] == 1
    assert (await admin.get("/api/characters/by-token/9", headers=session)).status == 404
    one = await (await admin.get(f"/api/characters/{char['id']}", headers=session)).json()
    assert one["character"] == char

    path = f"/api/characters/{char['id']}/visibility"
    bad = await admin.post(path, json={"visibility": "secret"}, headers=session)
    assert bad.status == 400 and _envelope(await bad.json())["param"] == "visibility"
    sim.state.inject("POST", "/backend/project_y/cameos/by_id/*/update_v2", "500")
    failed = await admin.post(path, json={"visibility": "private"}, headers=session)
    assert failed.status == 502 and "Sora server error" in _envelope(await failed.json())["message"]
    resp = await admin.post(path, json={"visibility": "private"}, headers=session)
    body = await resp.json()
    assert resp.status == 200 and body["character"]["visibility"] == "private"
    update = sim.state.calls(
        "POST", f"/backend/project_y/cameos/by_id/{char['cameo_id']}/update_v2"
    )[-1]
    assert update.json == {"visibility": "private"} and update.account_email == account.email
    assert sim.state.cameos[char["cameo_id"]].visibility == "private"

    resp = await admin.delete(f"/api/characters/{char['id']}", headers=session)
    body = await resp.json()
    assert resp.status == 200 and body["upstream"] == "deleted"
    assert sim.state.calls("DELETE", f"/backend/project_y/characters/{char['character_id']}")
    assert (await (await admin.get("/api/characters", headers=session)).json())["count"] == 0
    listed = await (await admin.get("/api/characters?include_deleted=true", headers=session)).json()
    assert listed["characters"][0]["deleted"] is True
    again = await (await admin.delete(f"/api/characters/{char['id']}", headers=session)).json()
    assert again["upstream"] == "already_deleted"
    gone = await admin.post(path, json={"visibility": "public"}, headers=session)
    assert gone.status == 409


async def test_character_already_gone_upstream_is_fine(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    account = sim.state.add_account()
    await add_token(admin, account)
    made = await _make_character(admin, sim, "gone_cat")
    char = (await (await admin.get("/api/characters", headers=session)).json())["characters"][0]
    sim.state.backend.delete_character(account, made["character_id"])  # the user deleted it on Sora
    body = await (await admin.delete(f"/api/characters/{char['id']}", headers=session)).json()
    assert body["upstream"] == "already_gone"
    row = await admin.app[keys.STORE].fetchone(
        "SELECT deleted FROM characters WHERE id = ?", (char["id"],)
    )
    assert row == {"deleted": 1}


async def test_character_delete_upstream_failure_keeps_the_row(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    await add_token(admin, sim.state.add_account())
    await _make_character(admin, sim, "kept_cat")
    char = (await (await admin.get("/api/characters", headers=session)).json())["characters"][0]
    sim.state.inject("DELETE", "/backend/project_y/characters/*", "502_html")
    resp = await admin.delete(f"/api/characters/{char['id']}", headers=session)
    assert resp.status == 502 and _envelope(await resp.json())["code"] == "server_error"
    assert (await (await admin.get("/api/characters", headers=session)).json())["count"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/characters/abc",
        "/api/characters/0",
        "/api/characters/by-token/x",
        f"/api/characters/{2**63}",  # beyond SQLite's INTEGER: a 400, not a 500
    ],
)
async def test_character_ids_are_checked(
    admin: TestClient, session: dict[str, str], path: str
) -> None:
    resp = await admin.get(path, headers=session)
    assert resp.status == 400 and _envelope(await resp.json())["param"] == "id"
    assert (await admin.get("/api/characters/77", headers=session)).status == 404


async def test_model_listings_are_folded_into_one_counted_log_row(make_client) -> None:
    client = await make_client()
    for _ in range(5):
        assert (await client.get("/v1/models", headers=KEY)).status == 200
    assert (await client.get("/v1/models")).status == 401  # failures keep a row each
    await client.app[REQLOG].flush()
    rows = await client.app[keys.STORE].fetchall(
        "SELECT path, status, count, key_hint FROM request_logs WHERE path = '/v1/models' ORDER BY id"
    )
    assert {(r["status"], r["count"]) for r in rows} == {(200, 5), (401, 1)}
    ok = next(r for r in rows if r["status"] == 200)
    assert ok["key_hint"].endswith(API_KEY[-4:]) and API_KEY not in ok["key_hint"]


async def test_videos_api_calls_are_logged_with_model_job_and_token(
    admin: TestClient, session: dict[str, str], sim: Sim
) -> None:
    sim.state.settings.video_seconds = 30
    await add_token(admin, sim.state.add_account())
    created = await admin.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "a cat", "seconds": "10"}, headers=KEY
    )
    video = await created.json()
    engine = admin.app[keys.JOBS]
    run = engine.run_of(video["id"])
    assert run is not None
    await asyncio.wait_for(run.done.wait(), 30)
    logs = (await (await admin.get("/api/logs", headers=session)).json())["logs"]
    row = next(e for e in logs if e["path"] == "/v1/videos")
    assert row["model"] == "sora-2" and row["job_id"] == video["id"]
    assert row["job_status"] == "completed" and row["token_id"] is not None
