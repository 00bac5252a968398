"""Helpers for talking to the simulator directly over HTTP in the simulator's own tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from sora2api.simulator import Account, SimState

SENTINEL = {"openai-sentinel-token": "AbCdEfGhIj12345"}


def video_body(prompt: str = "a dog running", **extra: Any) -> dict[str, Any]:
    """The seed's text-to-video payload."""
    body: dict[str, Any] = {
        "kind": "video",
        "prompt": prompt,
        "orientation": "portrait",
        "size": "small",
        "n_frames": 300,
        "model": "sy_8",
        "inpaint_items": [],
    }
    body.update(extra)
    return body


def image_body(prompt: str = "a cat", **extra: Any) -> dict[str, Any]:
    """The seed's image payload."""
    body: dict[str, Any] = {
        "type": "image_gen",
        "operation": "simple_compose",
        "prompt": prompt,
        "width": 360,
        "height": 540,
        "n_variants": 1,
        "n_frames": 1,
        "inpaint_items": [],
    }
    body.update(extra)
    return body


def file_form(data: bytes, filename: str, content_type: str, **fields: str) -> FormData:
    """A multipart body with a `file` part plus plain text fields."""
    form = FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


@dataclass
class Sim:
    """A test client for a simulator app, its state and one ready account."""

    client: TestClient
    state: SimState
    account: Account

    def headers(self, account: Account | None = None, *, sentinel: bool = False) -> dict[str, str]:
        """Authorization (+ sentinel) headers; Content-Type JSON even on GETs, like the seed."""
        token = (account or self.account).access_token
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if sentinel:
            headers.update(SENTINEL)
        return headers

    async def get(self, path: str, account: Account | None = None) -> tuple[int, Any]:
        """GET a backend path, returning (status, JSON or text)."""
        async with self.client.get(path, headers=self.headers(account)) as resp:
            return resp.status, await _body(resp)

    async def post(
        self,
        path: str,
        body: Any = None,
        account: Account | None = None,
        *,
        sentinel: bool = False,
    ) -> tuple[int, Any]:
        """POST JSON to a path, returning (status, JSON or text)."""
        headers = self.headers(account, sentinel=sentinel)
        async with self.client.post(path, json=body, headers=headers) as resp:
            return resp.status, await _body(resp)

    async def upload(
        self, path: str, form: FormData, account: Account | None = None
    ) -> tuple[int, Any]:
        """POST multipart to a path."""
        headers = {"Authorization": f"Bearer {(account or self.account).access_token}"}
        async with self.client.post(path, data=form, headers=headers) as resp:
            return resp.status, await _body(resp)

    async def create_video(self, account: Account | None = None, **extra: Any) -> str:
        """POST /nf/create and return the task id."""
        status, body = await self.post(
            "/backend/nf/create", video_body(**extra), account, sentinel=True
        )
        assert status == 200, body
        return str(body["id"])

    async def finish_video(self, task_id: str, account: Account | None = None) -> dict[str, Any]:
        """Jump the clock past the task and return its draft."""
        self.state.advance(60)
        status, pending = await self.get("/backend/nf/pending/v2", account)
        assert status == 200 and all(t["id"] != task_id for t in pending)
        status, drafts = await self.get("/backend/project_y/profile/drafts?limit=15", account)
        assert status == 200
        found = [d for d in drafts["items"] if d["task_id"] == task_id]
        assert found, drafts
        return dict(found[0])

    async def download(self, url: str) -> tuple[int, str, bytes]:
        """GET an absolute media URL without auth: (status, content type, bytes)."""
        async with self.client.session.get(url) as resp:
            return resp.status, resp.content_type, await resp.read()


async def _body(resp: Any) -> Any:
    raw = await resp.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")
