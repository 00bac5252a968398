"""Config contract, CLI failures, migrations, auth and the error envelope on every route."""

from __future__ import annotations

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sora2api.config import ConfigError, load_config
from sora2api.models import MODELS
from sora2api.store import CURRENT_VERSION, Store
from sora2api.store.migrations import MIGRATIONS

from .conftest import KEY
from .helpers import add_token

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "server": {"host": "127.0.0.1", "port": 8000, "public_url": ""},
    "auth": {"api_key": "han1234", "admin_username": "admin", "admin_password": "admin"},
    "storage": {"db_path": "data/sora2api.db", "media_dir": "data/tmp", "media_ttl": 3600},
    "upstream": {
        "base_url": "https://sora.chatgpt.com/backend",
        "session_url": "https://sora.chatgpt.com/api/auth/session",
        "oauth_url": "https://auth.openai.com/oauth/token",
        "poll_interval": 2.5,
        "image_timeout": 300,
        "video_timeout": 1500,
        "proxy": "",
    },
    "security": {"allow_private_urls": False, "max_body_mb": 64},
}


def test_shipped_config_has_the_contract_keys() -> None:
    cfg = load_config(ROOT / "config.toml", env={})
    for section, values in REQUIRED.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"[{section}] {key}"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server\nport = 1", "TOML syntax error"),
        ("[server]\nport = 'x'", "[server] port must be an integer"),
        ("[server]\nportt = 1", "unknown key [server] portt"),
        ("[nope]\na = 1", "unknown section [nope]"),
        (
            "[security]\nallow_private_urls = 1",
            "[security] allow_private_urls must be true or false",
        ),
        ("[generation]\ncontent_format = 'html'", "content_format must be one of json, markdown"),
        ("[upstream]\npoll_interval = -1", "poll_interval must be from 0.05 to 60"),
        ("[upstream]\nproxy = 'ftp://x'", "[upstream] proxy must start with http://"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_env_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[server]\nport = 8000\n")
    cfg = load_config(
        path, env={"SORA2API_SERVER_PORT": "9000", "SORA2API_SECURITY_ALLOW_PRIVATE_URLS": "true"}
    )
    assert cfg.server.port == 9000
    assert cfg.security.allow_private_urls is True
    assert ("server", "port") in cfg.env_overrides
    with pytest.raises(ConfigError, match="SORA2API_SERVER_PORT"):
        load_config(path, env={"SORA2API_SERVER_PORT": "many"})
    with pytest.raises(ConfigError, match="unknown variable SORA2API_SERVER_NOPE"):
        load_config(path, env={"SORA2API_SERVER_NOPE": "1"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "config file not found"),
        ("[server]\nport = true", "[server] port must be an integer"),
    ],
)
def test_cli_exits_nonzero_with_one_line(tmp_path: Path, text: str | None, fragment: str) -> None:
    path = tmp_path / "missing.toml" if text is None else _write(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "sora2api", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and str(path) in lines[0]


async def test_fresh_db_reaches_current_version(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "a.db")
    try:
        assert await store.version() == CURRENT_VERSION
        row = await store.fetchone("PRAGMA journal_mode")
        assert row is not None and "wal" in str(next(iter(row.values()))).lower()
    finally:
        await store.close()


async def test_old_db_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = await Store.open(path, migrations=MIGRATIONS[:1])
    await old.insert(
        "tokens", {"email": "a@x", "access_token": "at", "is_active": 0, "created_at": 1.0}
    )
    assert await old.version() == 1
    await old.close()
    store = await Store.open(path)
    try:
        assert await store.version() == CURRENT_VERSION
        row = await store.fetchone("SELECT email, status FROM tokens")
        # The migration derived the new status column from the old flag.
        assert row == {"email": "a@x", "status": "disabled"}
    finally:
        await store.close()


async def test_newer_db_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await Store.open(path)


async def test_health_is_public(client) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


def _assert_envelope(body: dict, status_word: str | None = None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}]
)
async def test_v1_requires_the_key(client, headers) -> None:
    resp = await client.get("/v1/models", headers=headers)
    assert resp.status == 401
    _assert_envelope(await resp.json())


async def test_models_list(client, sim) -> None:
    # Only what some usable account serves is listed: nothing before the first token.
    empty = await (await client.get("/v1/models", headers=KEY)).json()
    assert empty == {"object": "list", "data": []}
    await add_token(client, sim.state.add_account())
    resp = await client.get("/v1/models", headers=KEY)
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [
        "sora-image",
        "sora-image-landscape",
        "sora-image-portrait",
        "sora-video-10s",
        "sora-video-15s",
        "sora-video-landscape-10s",
        "sora-video-landscape-15s",
        "sora-video-portrait-10s",
        "sora-video-portrait-15s",
    ]
    assert all(m["object"] == "model" and m["owned_by"] for m in body["data"])
    assert len(MODELS) == 9
    one = await client.get("/v1/models/sora-image", headers=KEY)
    assert (await one.json())["id"] == "sora-image"
    missing = await client.get("/v1/models/nope", headers=KEY)
    assert missing.status == 404
    _assert_envelope(await missing.json())


async def test_errors_are_envelopes(client) -> None:
    r404 = await client.get("/nowhere")
    assert r404.status == 404
    _assert_envelope(await r404.json())
    r405 = await client.delete("/v1/models", headers=KEY)
    assert r405.status == 405
    _assert_envelope(await r405.json())
    bad = await client.post("/v1/chat/completions", data=b"{not json", headers=KEY)
    assert bad.status == 400
    body = await bad.json()
    _assert_envelope(body)
    assert "not valid JSON" in body["error"]["message"]


async def test_body_over_limit_is_413(make_client) -> None:
    client = await make_client(security={"max_body_mb": 1})
    resp = await client.post(
        "/v1/chat/completions", data=io.BytesIO(b"x" * (1024 * 1024 + 10)), headers=KEY
    )
    assert resp.status == 413
    body = await resp.json()
    _assert_envelope(body)
    assert "1 MB" in body["error"]["message"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_starts_and_stops_gracefully(tmp_path: Path, sig: signal.Signals) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _write(tmp_path, f"[server]\nport = {port}\n[auth]\napi_key = 'k-123456789'\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sora2api", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert (tmp_path / "data" / "sora2api.db").exists()
    assert "k-123456789" not in out  # the key never reaches the log


def test_shipped_config_lists_every_key_and_the_readme_documents_it() -> None:
    import tomllib

    from sora2api.config import SECTIONS, field_types

    data = tomllib.loads((ROOT / "config.toml").read_text())
    readme = (ROOT / "README.md").read_text()
    for section in SECTIONS:
        assert set(data[section]) == set(field_types(section)), section
        for key in field_types(section):
            # A row names `section.key`, or pairs it with its sibling: `a.x` / `y`.
            documented = f"`{section}.{key}`" in readme or f"/ `{key}`" in readme
            assert documented, f"README does not document {section}.{key}"
