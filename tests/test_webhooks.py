"""Webhooks: events of ended jobs delivered to a real receiver from the persisted outbox, signed
per Standard Webhooks, retried with backoff across restarts, through the URL guard."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from sora2api import keys
from sora2api.store import DeliveryRow

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers
from .keys_helpers import assert_envelope, finished, new_key, running

MakeClient = Callable[..., Awaitable[TestClient]]
# Small delays so a retry comes at once on any machine: first after 0.05 s, then 0.1, 0.2, 0.2.
FAST = {"first_retry": 0.05, "backoff_factor": 2.0, "max_retry_interval": 0.2}
ALLOWED = {"webhooks": FAST, "security": {"allow_private_urls": True}}


@dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class Receiver:
    """A webhook receiver on loopback: records every request and answers `status`."""

    def __init__(self) -> None:
        self.got: list[Got] = []
        self.status = 200
        # Requests to these paths are answered only once their event is set.
        self.hold: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.status
        async with self._changed:
            self.got.append(Got(request.path, dict(request.headers), body, status))
            self._changed.notify_all()
        gate = self.hold.get(request.path)
        if gate is not None:
            await gate.wait()
        return web.Response(status=status, text="ok" if status < 300 else "try later")

    async def wait_for(self, n: int, within: float = 30) -> list[Got]:
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.got) >= n)
        return self.got


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> tuple[Receiver, str]:
    rec = Receiver()
    server = await aiohttp_server(rec.app())
    return rec, str(server.make_url("")).rstrip("/")


async def _ready(make: MakeClient, sim: Sim, **sections: Any) -> TestClient:
    client = await make(**sections)
    sim.state.settings.video_seconds = 30
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


def _readme_verify() -> Callable[[str, dict[str, str], bytes], bool]:
    """The README's verification snippet itself, so the documented code is what is tested."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    code = text.split("<!-- webhook-verify -->\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


verify = _readme_verify()


async def until(
    client: TestClient, check: Callable[[list[DeliveryRow]], bool], within: float = 30
) -> list[DeliveryRow]:
    """The outbox's rows once `check` holds, re-read after every recorded attempt."""
    outbox, store = client.app[keys.WEBHOOKS], client.app[keys.STORE]
    async with asyncio.timeout(within):
        while True:
            recorded = outbox.recorded  # taken before the read: no attempt slips between
            rows = await store.webhooks.page(limit=100)
            if check(rows):
                return rows
            await recorded.wait()


async def _bootstrap_secret(client: TestClient) -> str:
    resp = await client.get(
        "/api/admin/webhooks/secret?reveal=1", headers=await admin_headers(client)
    )
    body = await resp.json()
    assert resp.status == 200, body
    return str(body["webhook_secret"])


async def _video(client: TestClient, headers: dict[str, str], **body: Any) -> str:
    resp = await client.post("/v1/videos", json={"prompt": "a cat", **body}, headers=headers)
    answer = await resp.json()
    assert resp.status == 200, answer
    return str(answer["id"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_bootstrap_key_job_sends_a_signed_event(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    client = await _ready(make_client, sim, **ALLOWED)
    job_id = await _video(client, KEY, webhook_url=f"{base}/hooks/a?token=t0p")
    assert (await finished(client, job_id))["status"] == "completed"
    (got,) = await rec.wait_for(1)
    assert got.path == "/hooks/a" and got.headers["Content-Type"] == "application/json"
    import orjson

    event = orjson.loads(got.body)
    assert event == {
        "id": event["id"],
        "object": "event",
        "type": "video.completed",
        "created_at": event["created_at"],
        "data": {"id": job_id},
    }
    assert event["id"].startswith("evt_") and isinstance(event["created_at"], int)
    secret = await _bootstrap_secret(client)
    assert secret.startswith("whsec_") and verify(secret, got.headers, got.body)
    assert not verify("whsec_" + base64.b64encode(b"x" * 32).decode(), got.headers, got.body)
    # The reference implementation agrees (it also checks the timestamp is recent).
    assert Webhook(secret).verify(got.body, got.headers) == event

    rows = await until(client, lambda rows: rows[0].status == "delivered")
    admin = await admin_headers(client)
    resp = await client.get("/api/admin/webhooks/deliveries", headers=admin)
    raw = await resp.text()
    assert resp.status == 200 and secret not in raw and "t0p" not in raw
    (listed,) = (await resp.json())["data"]
    assert listed["id"] == rows[0].id == got.headers["webhook-id"]
    assert listed["url"] == f"{base}/hooks/a" and listed["event"] == "video.completed"
    assert (listed["status"], listed["attempts"], listed["last_status"]) == ("delivered", 1, 200)
    assert listed["next_retry_at"] is None and listed["key_id"] is None
    # The secret is masked unless revealed, and only an admin gets it.
    masked = await (await client.get("/api/admin/webhooks/secret", headers=admin)).json()
    assert masked["webhook_secret"] == "…" + secret[-4:]
    assert (await client.get("/api/admin/webhooks/secret", headers=KEY)).status in (401, 403)
    # The secret survives a restart (generated once, stored).
    await client.close()
    again = await make_client(**ALLOWED)
    assert await _bootstrap_secret(again) == secret


async def test_a_request_url_comes_on_top_of_the_keys_urls(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    client = await _ready(make_client, sim, **ALLOWED)
    created, headers = await new_key(client, webhook_urls=[f"{base}/k1", f"{base}/k2"])
    other, other_headers = await new_key(client, name="other")
    job_id = await _video(client, headers, webhook_url=f"{base}/mine")
    await finished(client, job_id)
    got = await rec.wait_for(3)
    assert sorted(g.path for g in got) == ["/k1", "/k2", "/mine"]
    assert len({g.headers["webhook-id"] for g in got}) == 3  # one message per destination
    assert len({g.body for g in got}) == 1  # the same event
    for g in got:
        assert verify(created["webhook_secret"], g.headers, g.body)
        assert not verify(other["webhook_secret"], g.headers, g.body)
    # A job of the other key without a URL sends nothing; the admin filters by key and status.
    await finished(client, await _video(client, other_headers))
    await until(client, lambda rows: all(r.status == "delivered" for r in rows))
    admin = await admin_headers(client)
    mine = await client.get(f"/api/admin/webhooks/deliveries?key_id={created['id']}", headers=admin)
    assert {d["key_id"] for d in (await mine.json())["data"]} == {created["id"]}
    theirs = await client.get(
        f"/api/admin/webhooks/deliveries?key_id={other['id']}&status=delivered", headers=admin
    )
    assert (await theirs.json())["data"] == []
    page = await (await client.get("/api/admin/webhooks/deliveries?limit=2", headers=admin)).json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    rest = await client.get(
        f"/api/admin/webhooks/deliveries?limit=2&after={page['data'][-1]['id']}", headers=admin
    )
    assert len((await rest.json())["data"]) == 1
    # A key never reads deliveries (the admin API is admin-only).
    assert (await client.get("/api/admin/webhooks/deliveries", headers=headers)).status == 401
    for query, param in (("status=nope", "status"), ("key_id=x", "key_id"), ("limit=0", "limit")):
        bad = await client.get(f"/api/admin/webhooks/deliveries?{query}", headers=admin)
        assert bad.status == 400
        assert_envelope(await bad.json(), param)


async def test_failed_and_cancelled_jobs_send_their_events(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    client = await _ready(make_client, sim, **ALLOWED)
    sim.state.scenario("fail", target="image", message="render farm on fire")
    resp = await client.post(
        "/v1/images/generations",
        json={"prompt": "doomed", "webhook_url": f"{base}/img"},
        headers=KEY,
    )
    assert resp.status == 502, await resp.text()
    (failed,) = await rec.wait_for(1)
    assert failed.path == "/img" and b'"type":"image.failed"' in failed.body

    sim.state.settings.video_seconds = 3000  # long enough to cancel it while it runs
    form = FormData({"prompt": "slow", "webhook_url": f"{base}/vid"})
    resp = await client.post("/v1/videos", data=form, headers=KEY)
    job_id = (await resp.json())["id"]
    await running(client, job_id)
    cancel = await client.post(f"/api/jobs/{job_id}/cancel", headers=await admin_headers(client))
    assert cancel.status == 200, await cancel.text()
    got = await rec.wait_for(2)
    assert got[1].path == "/vid" and b'"type":"video.cancelled"' in got[1].body
    assert job_id.encode() in got[1].body


@pytest.mark.parametrize(
    "value",
    ["ftp://hooks.example/x", "not a url", 42, "https://", "https://h.example/" + "a" * 2000],
)
async def test_a_bad_webhook_url_is_a_400_and_nothing_starts(
    make_client: MakeClient, sim: Sim, value: Any
) -> None:
    client = await _ready(make_client, sim)
    resp = await client.post(
        "/v1/videos", json={"prompt": "a cat", "webhook_url": value}, headers=KEY
    )
    assert resp.status == 400
    assert_envelope(await resp.json(), "webhook_url")
    for path in ("/v1/images/generations", "/v1/videos"):
        form = FormData({"prompt": "a cat", "webhook_url": str(value)})
        resp = await client.post(path, data=form, headers=KEY)
        assert resp.status == 400, path
        assert_envelope(await resp.json(), "webhook_url")
    assert sim.state.calls("POST") == []
    assert await client.app[keys.STORE].fetchall("SELECT id FROM jobs") == []


async def test_a_restart_mid_retry_still_delivers(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    rec.status = 500
    client = await _ready(make_client, sim, **ALLOWED)
    job_id = await _video(client, KEY, webhook_url=f"{base}/r")
    await finished(client, job_id)
    rows = await until(client, lambda rows: bool(rows) and rows[0].attempts >= 2)
    assert rows[0].status == "pending" and rows[0].last_status == 500
    assert rows[0].last_error is not None and "HTTP 500" in rows[0].last_error
    assert rows[0].next_at is not None
    await client.close()
    rec.status = 200
    seen = len(rec.got)
    again = await make_client(**ALLOWED)
    rows = await until(again, lambda rows: rows[0].status == "delivered")
    got = await rec.wait_for(seen + 1)
    assert [g.answered for g in got].count(200) == 1 and got[-1].answered == 200
    assert {g.headers["webhook-id"] for g in got} == {rows[0].id}  # the same id on every retry
    assert len({g.body for g in got}) == 1
    assert rows[0].last_status == 200 and rows[0].attempts >= 3


async def test_a_receiver_that_comes_back_gets_the_event_once(
    make_client: MakeClient, sim: Sim, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    port = _free_port()
    client = await _ready(make_client, sim, **ALLOWED)
    job_id = await _video(client, KEY, webhook_url=f"http://127.0.0.1:{port}/back")
    await finished(client, job_id)
    rows = await until(client, lambda rows: bool(rows) and rows[0].attempts >= 2)
    assert rows[0].status == "pending" and rows[0].last_status is None
    assert rows[0].last_error and "connect" in rows[0].last_error.lower()
    rec = Receiver()
    await aiohttp_server(rec.app(), port=port)
    rows = await until(client, lambda rows: rows[0].status == "delivered")
    assert len(rec.got) == 1 and rec.got[0].headers["webhook-id"] == rows[0].id
    assert rec.got[0].path == "/back"


async def test_a_private_receiver_is_refused_unless_allowed(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    client = await _ready(make_client, sim, webhooks=FAST)
    job_id = await _video(client, KEY, webhook_url=f"{base}/private")
    await finished(client, job_id)
    rows = await until(client, lambda rows: bool(rows) and rows[0].attempts >= 2)
    assert rows[0].status == "pending" and rows[0].last_error is not None
    assert "not a public address" in rows[0].last_error and rec.got == []
    await client.close()
    allowed = await make_client(**ALLOWED)
    rows = await until(allowed, lambda rows: rows[0].status == "delivered")
    (got,) = rec.got
    assert got.path == "/private" and got.headers["webhook-id"] == rows[0].id


async def test_a_delivery_is_given_up_after_max_age(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    rec.status = 404
    sections = {**ALLOWED, "webhooks": {**FAST, "max_age": 0.3}}
    client = await _ready(make_client, sim, **sections)
    await finished(client, await _video(client, KEY, webhook_url=f"{base}/gone"))
    rows = await until(client, lambda rows: bool(rows) and rows[0].status == "failed")
    assert rows[0].last_error is not None and rows[0].last_error.startswith("Gave up after")
    assert "HTTP 404" in rows[0].last_error and rows[0].attempts == len(rec.got)
    assert await client.app[keys.WEBHOOKS].backlog() == 0


async def test_one_delivery_per_url_at_a_time(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    gate = rec.hold["/same"] = asyncio.Event()
    client = await _ready(make_client, sim, **ALLOWED)
    await finished(client, await _video(client, KEY, webhook_url=f"{base}/same"))
    (first,) = await rec.wait_for(1)  # held: its answer waits for the gate
    await finished(client, await _video(client, KEY, webhook_url=f"{base}/same"))
    await finished(client, await _video(client, KEY, webhook_url=f"{base}/other"))
    # The /other event, due after the second /same one, is delivered while /same is busy...
    rows = await until(client, lambda rows: any(r.status == "delivered" for r in rows))
    second = next(
        r for r in rows if r.url == f"{base}/same" and r.id != first.headers["webhook-id"]
    )
    # ...and the second /same event was not sent meanwhile.
    assert second.attempts == 0 and [g.path for g in rec.got].count("/same") == 1
    gate.set()
    rows = await until(client, lambda rows: all(r.status == "delivered" for r in rows))
    same = [g for g in rec.got if g.path == "/same"]
    assert len(same) == 2 and same[1].headers["webhook-id"] == second.id
    assert all(r.attempts == 1 for r in rows)


async def test_a_deleted_keys_deliveries_are_given_up(
    make_client: MakeClient, sim: Sim, receiver: tuple[Receiver, str]
) -> None:
    rec, base = receiver
    rec.status = 503
    client = await _ready(make_client, sim, **ALLOWED)
    created, headers = await new_key(client, webhook_urls=[f"{base}/k"])
    await finished(client, await _video(client, headers))
    await until(client, lambda rows: bool(rows) and rows[0].attempts >= 1)
    admin = await admin_headers(client)
    assert (await client.delete(f"/api/admin/keys/{created['id']}", headers=admin)).status == 200
    rows = await until(client, lambda rows: rows[0].status == "failed")
    assert rows[0].last_error is not None and "deleted" in rows[0].last_error
    assert all(verify(created["webhook_secret"], g.headers, g.body) for g in rec.got)
