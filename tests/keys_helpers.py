"""Helpers for the API-key and usage tests: creating keys through the admin API, waiting for jobs."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from sora2api import keys

from .helpers import admin_headers


async def new_key(client: TestClient, **fields: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Create a key through POST /api/admin/keys; returns its answer and its request headers."""
    body = {"name": fields.pop("name", "friend"), **fields}
    resp = await client.post("/api/admin/keys", json=body, headers=await admin_headers(client))
    created = await resp.json()
    assert resp.status == 201, created
    return created, {"Authorization": f"Bearer {created['key']}"}


async def finished(client: TestClient, job_id: str, within: float = 30) -> dict[str, Any]:
    """The job's row once it reached a final status (bounded wait on the engine's run)."""
    run = client.app[keys.JOBS].run_of(job_id)
    if run is not None:
        await asyncio.wait_for(run.done.wait(), within)
    row = await client.app[keys.STORE].fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert row is not None and row["status"] in ("completed", "failed", "cancelled"), row
    return row


async def running(client: TestClient, job_id: str, within: float = 20) -> None:
    """Wait until the job's upstream task exists (it is then polled, not queued)."""
    store = client.app[keys.STORE]
    async with asyncio.timeout(within):
        while True:
            row = await store.fetchone("SELECT phase FROM jobs WHERE id = ?", (job_id,))
            if row is not None and row["phase"] == "polling":
                return
            await asyncio.sleep(0.02)


async def video(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post(
        "/v1/videos", json={"prompt": "a cat", "seconds": "10", **body}, headers=headers
    )
    answer = await resp.json()
    assert resp.status == 200, answer
    return answer  # type: ignore[no-any-return]


def assert_envelope(body: dict[str, Any], param: str | None = None) -> dict[str, Any]:
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
        assert param.split(".")[-1] in error["message"], error
    return error  # type: ignore[no-any-return]
