"""Shared fixtures: the simulator as a real HTTP server, and the real app pointed at it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sora2api import auth
from sora2api.app import create_app
from sora2api.config import Config, build_config
from sora2api.simulator import SIM_STATE, SimState, create_simulator

API_KEY = "test-key-0123456789"
KEY = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Sim:
    server: TestServer
    state: SimState

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at OWASP cost takes ~0.4 s and the suite hashes hundreds of times. The service's
    default stays at OWASP cost: tests/test_password_hashing.py proves it."""
    monkeypatch.setattr(auth, "hash_cost", auth.ScryptCost(n=2**10, r=8, p=1))


@pytest.fixture
async def sim(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Sim:
    app = create_simulator(time_scale=0.01)
    server = await aiohttp_server(app)
    return Sim(server, app[SIM_STATE])


def config_for(sim: Sim, tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A config pointing every upstream host at the simulator, storage in tmp_path."""
    data: dict[str, dict[str, Any]] = {
        "server": {"keepalive_interval": 15.0},
        "auth": {"api_key": API_KEY},
        "storage": {"db_path": str(tmp_path / "db.sqlite"), "media_dir": str(tmp_path / "media")},
        "upstream": {
            "base_url": sim.url + "/backend",
            "session_url": sim.url + "/api/auth/session",
            "oauth_url": sim.url + "/oauth/token",
            "third_party_url": sim.url + "/thirdparty/MP4/{post_id}.mp4",
            "poll_interval": 0.05,
            "image_timeout": 30.0,
            "video_timeout": 60.0,
            "request_timeout": 10.0,
        },
        "generation": {"queue_timeout": 5.0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return build_config(data, source="test", env={}, base_dir=str(tmp_path))


@pytest.fixture
def make_client(
    sim: Sim, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> Callable[..., Awaitable[TestClient]]:
    """Start the real app (optionally with config overrides) and return an HTTP client for it."""

    async def make(**sections: dict[str, Any]) -> TestClient:
        app: web.Application = create_app(config_for(sim, tmp_path, **sections))
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await make_client()
