"""Test helpers: adding simulator accounts as tokens, reading SSE streams."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.simulator import Account

from .conftest import KEY


async def admin_headers(client: TestClient) -> dict[str, str]:
    """An admin session opened the way POST /api/login would, sent as a bearer token."""
    auth = client.app[keys.AUTH]
    if auth.password_is_default:  # the panel refuses sessions until the default is changed
        await auth.change_password("admin", "a-better-password")
    token, _ = await auth.login("admin", "a-better-password", "test")
    return {"Authorization": f"Bearer {token}"}


async def add_token(client: TestClient, account: Account, **extra: Any) -> int:
    """Add a simulator account's access token through the public API, as a user would
    (with an admin session when it sets a proxy, which the API key may not)."""
    headers = await admin_headers(client) if extra.get("proxy") else KEY
    resp = await client.post(
        "/api/tokens", json={"token": account.access_token, **extra}, headers=headers
    )
    body = await resp.json()
    assert resp.status in (200, 201), body
    token = body.get("token", body)
    return int(token["id"])


async def read_sse(resp: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """All data frames (parsed) and the raw comment lines of a finished stream; asserts [DONE] last."""
    raw = (await resp.read()).decode()
    frames: list[dict[str, Any]] = []
    comments: list[str] = []
    done = False
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        assert not done, f"data after [DONE]: {block!r}"
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                payload = line[6:]
                if payload == "[DONE]":
                    done = True
                else:
                    frames.append(orjson.loads(payload))
    assert done, "stream did not end with [DONE]"
    return frames, comments


def reasoning(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        if "choices" in f:
            r = f["choices"][0]["delta"].get("reasoning_content")
            if r:
                out.append(r)
    return out


def final_result(frames: list[dict[str, Any]]) -> dict[str, Any]:
    chunk = [f for f in frames if "choices" in f and f["choices"][0]["finish_reason"]][-1]
    return orjson.loads(chunk["choices"][0]["delta"]["content"])


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def chat(model: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}
