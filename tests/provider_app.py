"""The app under test with one live provider's simulator: add accounts, make videos, read them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp.test_utils import TestClient

from sora2api.simulator.providers import ProviderAccount, ProviderState

from .conftest import KEY, Sim
from .helpers import admin_headers


async def until(check: Callable[[], bool], within: float = 30) -> None:
    """Wait, bounded, for something the app does in the background to show at the simulator."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


@dataclass
class ProviderApp:
    """One provider's end-to-end view; subclasses name the provider, its base URL and creates."""

    client: TestClient
    sim: Sim
    ps: ProviderState

    provider: ClassVar[str]
    creates_path: ClassVar[str]  # a journal glob matching the provider's create calls

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    async def add(self, key: str) -> tuple[int, dict[str, Any]]:
        body = {"provider": self.provider, "token": key, "base_url": self.base_url}
        # The simulator is on loopback: only an admin may point an account at a private host.
        headers = await admin_headers(self.client)
        resp = await self.client.post("/api/tokens", json=body, headers=headers)
        return resp.status, await resp.json()

    async def add_ok(self, name: str) -> ProviderAccount:
        account = self.ps.add_account(self.provider, name=name)
        status, body = await self.add(account.key)
        assert status in (200, 201), body
        return account

    async def video(self, **body: Any) -> dict[str, Any]:
        resp = await self.client.post("/v1/videos", json=body, headers=KEY)
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def wait(self, video_id: str, within: float = 60) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                resp = await self.client.get(f"/v1/videos/{video_id}", headers=KEY)
                body = dict(await resp.json())
                if body.get("status") in ("completed", "failed", "cancelled"):
                    return body
                await asyncio.sleep(0.03)

    async def content(self, video_id: str) -> tuple[int, bytes]:
        resp = await self.client.get(f"/v1/videos/{video_id}/content", headers=KEY)
        return resp.status, await resp.read()

    def creates(self) -> list[Any]:
        return self.sim.state.calls("POST", self.creates_path)
