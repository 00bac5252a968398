"""API keys created by the admin: the admin API, authentication, per-key isolation of jobs,
model restrictions, per-key formats. Limits are in test_usage.py."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat, read_sse, reasoning
from .keys_helpers import assert_envelope, finished, new_key, video


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    sim.state.settings.video_seconds = 30
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


async def test_create_list_change_delete(client: TestClient) -> None:
    admin = await admin_headers(client)
    created, headers = await new_key(
        client,
        name="bot",
        models=["sora-image"],
        limits={"rpm": 5},
        webhook_urls=["https://hooks.example/x"],
        content_format="markdown",
    )
    key, secret = created["key"], created["webhook_secret"]
    assert key.startswith("sk-s2a-") and len(key) > 40 and secret.startswith("whsec_")
    assert created["key_hint"] == "…" + key[-4:]
    assert created["limits"] == {
        "concurrency": None,
        "rpm": 5,
        "video_seconds_per_day": None,
        "images_per_day": None,
    }
    assert (created["models"], created["enabled"], created["expires_at"]) == (
        ["sora-image"],
        True,
        None,
    )
    # Only the hash is stored; the secret is kept to sign deliveries (documented).
    row = await client.app[keys.STORE].fetchone("SELECT * FROM api_keys")
    assert row is not None and row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in orjson.dumps(row).decode()

    listed = await client.get("/api/admin/keys", headers=admin)
    raw = await listed.text()
    assert listed.status == 200 and key not in raw and secret not in raw and key[:-4] not in raw
    (entry,) = (await listed.json())["data"]
    assert entry["key_hint"] == "…" + key[-4:] and "key" not in entry
    assert "webhook_secret" not in entry and entry["name"] == "bot"

    assert (await client.get("/v1/models", headers=headers)).status == 200
    resp = await client.put(
        f"/api/admin/keys/{created['id']}", json={"enabled": False}, headers=admin
    )
    assert resp.status == 200 and (await resp.json())["enabled"] is False
    refused = await client.get("/v1/models", headers=headers)
    assert refused.status == 401
    assert assert_envelope(await refused.json())["code"] == "api_key_disabled"
    resp = await client.put(
        f"/api/admin/keys/{created['id']}", json={"enabled": True, "name": "bot2"}, headers=admin
    )
    assert (await resp.json())["name"] == "bot2"
    assert (await client.get("/v1/models", headers=headers)).status == 200

    resp = await client.delete(f"/api/admin/keys/{created['id']}", headers=admin)
    assert resp.status == 200 and (await resp.json())["deleted"] is True
    assert (await client.get("/v1/models", headers=headers)).status == 401
    assert (await (await client.get("/api/admin/keys", headers=admin)).json())["data"] == []
    gone = await client.delete(f"/api/admin/keys/{created['id']}", headers=admin)
    assert gone.status == 404


async def test_expired_key_is_401(client: TestClient) -> None:
    created, headers = await new_key(client, expires_at=int(time.time()) + 3600)
    assert (await client.get("/v1/models", headers=headers)).status == 200
    admin = await admin_headers(client)
    resp = await client.put(
        f"/api/admin/keys/{created['id']}", json={"expires_at": time.time() - 1}, headers=admin
    )
    assert resp.status == 200
    refused = await client.get("/v1/models", headers=headers)
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert assert_envelope(await refused.json())["code"] == "api_key_expired"


async def test_key_routes_are_admin_only(client: TestClient) -> None:
    created, headers = await new_key(client)
    for method, path in [
        ("GET", "/api/admin/keys"),
        ("POST", "/api/admin/keys"),
        ("PUT", f"/api/admin/keys/{created['id']}"),
        ("DELETE", f"/api/admin/keys/{created['id']}"),
        ("GET", "/api/admin/usage"),
    ]:
        for who in (KEY, headers, {}):
            resp = await client.request(method, path, json={"name": "x"}, headers=who)
            assert resp.status == 401, (method, path, who)
            assert_envelope(await resp.json())
    # token management stays with the bootstrap key and the panel
    for method, path in [("GET", "/api/tokens"), ("POST", "/api/tokens/test-all")]:
        assert (await client.request(method, path, headers=headers)).status == 401
    # ...and nothing changed: the key still exists and works
    assert (await client.get("/v1/models", headers=headers)).status == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "x", "models": "sora-image"}, "models"),
        ({"name": "x", "models": []}, "models"),
        ({"name": "x", "models": [5]}, "models"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "x", "expires_at": True}, "expires_at"),
        ({"name": "x", "limits": [1]}, "limits"),
        ({"name": "x", "limits": {"rpm": 0}}, "limits.rpm"),
        ({"name": "x", "limits": {"rpm": "5"}}, "limits.rpm"),
        ({"name": "x", "limits": {"concurrency": 1.5}}, "limits.concurrency"),
        ({"name": "x", "limits": {"tokens_per_day": 5}}, "limits.tokens_per_day"),
        ({"name": "x", "webhook_urls": ["ftp://host/x"]}, "webhook_urls"),
        ({"name": "x", "webhook_urls": "https://a.b"}, "webhook_urls"),
        ({"name": "x", "progress_format": "xml"}, "progress_format"),
        ({"name": "x", "content_format": "html"}, "content_format"),
        ({"name": "x", "enabled": False}, "enabled"),  # only a change may disable
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
async def test_create_refuses_bad_input(
    client: TestClient, body: dict[str, Any], param: str
) -> None:
    resp = await client.post("/api/admin/keys", json=body, headers=await admin_headers(client))
    assert resp.status == 400
    assert assert_envelope(await resp.json(), param)["type"] == "invalid_request_error"
    assert await client.app[keys.STORE].fetchall("SELECT id FROM api_keys") == []


async def test_update_refuses_bad_input_and_keeps_the_key(client: TestClient) -> None:
    created, headers = await new_key(client, limits={"rpm": 3})
    admin = await admin_headers(client)
    path = f"/api/admin/keys/{created['id']}"
    for body, param in [
        ({"enabled": "no"}, "enabled"),
        ({"limits": {"rpm": -1}}, "limits.rpm"),
        ({"key": "sk-mine"}, "key"),
    ]:
        resp = await client.put(path, json=body, headers=admin)
        assert resp.status == 400, body
        assert_envelope(await resp.json(), param)
    resp = await client.put(path, json={}, headers=admin)
    assert resp.status == 400 and "Nothing to change" in (await resp.json())["error"]["message"]
    for bad_id in ("abc", "99999"):
        resp = await client.put(f"/api/admin/keys/{bad_id}", json={"name": "y"}, headers=admin)
        assert resp.status == (400 if bad_id == "abc" else 404)
        assert_envelope(await resp.json())
    (entry,) = (await (await client.get("/api/admin/keys", headers=admin)).json())["data"]
    assert entry["limits"]["rpm"] == 3 and entry["enabled"] is True
    assert (await client.get("/v1/models", headers=headers)).status == 200


async def test_a_key_sees_only_its_own_jobs(ready: TestClient, sim: Sim) -> None:
    client = ready
    _, alice = await new_key(client, name="alice")
    _, bob = await new_key(client, name="bob")
    mine = await video(client, alice)
    assert (await finished(client, mine["id"]))["status"] == "completed"
    resp = await client.post(
        "/v1/images/generations", json={"prompt": "a cat", "model": "sora-image"}, headers=alice
    )
    assert resp.status == 200, await resp.text()
    image_id = (await resp.json())["job_id"]
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "x"), headers=alice
    )
    assert resp.status == 200, await resp.text()
    chat_id = (await resp.json())["job_id"]
    creates = len(sim.state.calls("POST", "/backend/nf/create"))
    assert creates == 2

    for method, path in [
        ("GET", f"/v1/videos/{mine['id']}"),
        ("GET", f"/v1/videos/{mine['id']}/content"),
        ("POST", f"/v1/videos/{mine['id']}/remix"),
        ("DELETE", f"/v1/videos/{mine['id']}"),
        ("GET", f"/v1/images/{image_id}"),
        ("GET", f"/v1/videos/{chat_id}"),  # a chat job re-attached by its id
        ("GET", f"/v1/videos/{chat_id}/content"),
    ]:
        resp = await client.request(method, path, json={"prompt": "mine now"}, headers=bob)
        assert resp.status == 404, (method, path, await resp.text())
        assert assert_envelope(await resp.json())["type"] == "not_found_error"
    listed = await (await client.get("/v1/videos", headers=bob)).json()
    assert listed["data"] == []
    resp = await client.get(f"/v1/videos?after={mine['id']}", headers=bob)
    assert resp.status == 400  # another key's id is no cursor either
    # nothing reached the upstream, nothing was deleted
    assert len(sim.state.calls("POST", "/backend/nf/create")) == creates
    for job_id in (mine["id"], image_id, chat_id):
        assert await client.app[keys.JOBS].get(job_id)

    # the owner sees its own, in the list too; the bootstrap key and the admin see everything
    assert (await client.get(f"/v1/videos/{chat_id}", headers=alice)).status == 200
    assert (await client.get(f"/v1/images/{image_id}", headers=alice)).status == 200
    own = await (await client.get("/v1/videos", headers=alice)).json()
    assert {v["id"] for v in own["data"]} == {mine["id"], chat_id}
    assert (await client.get(f"/v1/videos/{mine['id']}", headers=KEY)).status == 200
    every = await (await client.get("/v1/videos", headers=KEY)).json()
    assert {mine["id"], chat_id} <= {v["id"] for v in every["data"]}
    admin = await admin_headers(client)
    assert (await client.get(f"/api/jobs/{image_id}", headers=admin)).status == 200
    # the owner may delete it
    assert (await client.delete(f"/v1/videos/{mine['id']}", headers=alice)).status == 200


async def test_bootstrap_jobs_are_invisible_to_created_keys(ready: TestClient) -> None:
    _, bob = await new_key(ready, name="bob")
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    assert resp.status == 200, await resp.text()
    job_id = (await resp.json())["job_id"]
    assert (await ready.get(f"/v1/images/{job_id}", headers=KEY)).status == 200  # now cached
    assert (await ready.get(f"/v1/images/{job_id}", headers=bob)).status == 404


async def test_models_restriction(ready: TestClient, sim: Sim) -> None:
    _, headers = await new_key(ready, models=["sora-image", "sora-video-10s"])
    listed = await (await ready.get("/v1/models", headers=headers)).json()
    assert [m["id"] for m in listed["data"]] == ["sora-image", "sora-video-10s"]
    assert (await ready.get("/v1/models/sora-image", headers=headers)).status == 200
    assert (await ready.get("/v1/models/sora-video-15s", headers=headers)).status == 404
    everything = await (await ready.get("/v1/models", headers=KEY)).json()
    assert len(everything["data"]) > 2

    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-video-15s", "a dog"), headers=headers
    )
    assert resp.status == 403
    error = assert_envelope(await resp.json(), "model")
    assert error["code"] == "model_not_allowed" and "sora-video-15s" in error["message"]
    resp = await ready.post(
        "/v1/videos", json={"prompt": "a dog", "model": "sora-2"}, headers=headers
    )
    assert resp.status == 403
    assert not sim.state.calls("POST", "/backend/nf/create")
    assert await ready.app[keys.STORE].fetchall("SELECT id FROM jobs") == []
    ok = await ready.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=headers)
    assert ok.status == 200, await ok.text()


async def test_per_key_formats(ready: TestClient) -> None:
    _, headers = await new_key(ready, content_format="markdown", progress_format="text")
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=headers)
    content = (await resp.json())["choices"][0]["message"]["content"]
    assert content.startswith("![Generated Image](")
    # the bootstrap key keeps the configured JSON content
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", "y"), headers=KEY)
    assert orjson.loads((await resp.json())["choices"][0]["message"]["content"])["type"] == "image"

    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-image", "z", stream=True), headers=headers
    )
    frames, _ = await read_sse(resp)
    assert reasoning(frames) and all(isinstance(r, str) for r in reasoning(frames))
    # the request's own field wins over the key's default
    body = chat("sora-image", "w", stream=True, progress_format="object")
    frames, _ = await read_sse(await ready.post("/v1/chat/completions", json=body, headers=headers))
    assert all(isinstance(r, dict) for r in reasoning(frames))
