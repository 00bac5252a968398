"""Bad input is a 400 naming the field, refused before anything reaches the upstream (issue 9,
items 13-15): settings ranges and formats, secrets masked in every view, request fields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.simulator import mp4_bytes, png

from .conftest import KEY, Sim
from .helpers import add_token, admin_headers, chat, data_url

MakeClient = Callable[..., Awaitable[TestClient]]


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


@pytest.fixture
async def ready(client: TestClient, sim: Sim) -> TestClient:
    sim.state.settings.image_seconds = 20
    sim.state.settings.video_seconds = 60
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


def _assert_nothing_sent(sim: Sim) -> None:
    calls = [(e.method, e.path) for e in sim.state.journal]
    assert calls == [], calls


# -- item 15: request fields -----------------------------------------------------------------


@pytest.mark.parametrize("n", ["²", "①", "٣", "1e3", "-1", " 2x", "9" * 400])
async def test_image_n_not_an_integer_is_400(ready: TestClient, sim: Sim, n: str) -> None:
    resp = await ready.post("/v1/images/generations", json={"prompt": "a fox", "n": n}, headers=KEY)
    assert resp.status == 400, await resp.text()
    err = _envelope(await resp.json())
    assert err["param"] == "n" and "'n'" in err["message"]
    form = FormData()
    form.add_field("prompt", "make it blue")
    form.add_field("n", n)
    form.add_field("image", png(8, 8), filename="a.png", content_type="image/png")
    resp = await ready.post("/v1/images/edits", data=form, headers=KEY)
    assert resp.status == 400, await resp.text()
    assert _envelope(await resp.json())["param"] == "n"
    _assert_nothing_sent(sim)


async def test_image_n_as_digit_string_still_works(ready: TestClient, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/images/generations", json={"prompt": "a fox", "n": " 2 "}, headers=KEY
    )
    assert resp.status == 200, await resp.text()
    (call,) = sim.state.calls("POST", "/backend/video_gen")
    assert call.json["n_variants"] == 2


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\x7f"])
@pytest.mark.parametrize("field", ["st", "token", "rt"])
async def test_control_characters_in_credentials_are_400(
    ready: TestClient, sim: Sim, bad: str, field: str
) -> None:
    value = f"abc{bad}Set-Cookie: x=1"
    resp = await ready.post("/api/tokens", json={field: value}, headers=KEY)
    assert resp.status == 400, await resp.text()
    err = _envelope(await resp.json())
    assert err["param"] == field and "control character" in err["message"]
    assert value not in err["message"]  # a credential is never echoed back
    _assert_nothing_sent(sim)


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00"])
async def test_control_characters_in_st2at_and_rt2at_are_400(
    ready: TestClient, sim: Sim, bad: str
) -> None:
    headers = await admin_headers(ready)
    resp = await ready.post("/api/tokens/st2at", json={"st": f"st{bad}x"}, headers=headers)
    assert resp.status == 400, await resp.text()
    assert _envelope(await resp.json())["param"] == "st"
    resp = await ready.post("/api/tokens/rt2at", json={"rt": f"rt{bad}x"}, headers=headers)
    assert resp.status == 400, await resp.text()
    assert _envelope(await resp.json())["param"] == "rt"
    _assert_nothing_sent(sim)
    assert len(ready.app[keys.POOL].tokens()) == 1  # nothing stored is lost or added


async def test_control_characters_in_an_import_are_item_errors(ready: TestClient, sim: Sim) -> None:
    headers = await admin_headers(ready)
    body = [{"session_token": "st\r\nx"}, {"refresh_token": "rt\ny"}, {"access_token": "a\x00b"}]
    resp = await ready.post("/api/tokens/import", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    results = (await resp.json())["results"]
    assert [r["result"] for r in results] == ["error"] * 3
    assert all("control character" in r["message"] for r in results), results
    _assert_nothing_sent(sim)


@pytest.mark.parametrize("model", ["sora-video-landscape-10s", "sora-image"])
async def test_chat_prompt_over_10000_characters_is_400(
    ready: TestClient, sim: Sim, model: str
) -> None:
    for content in (
        "x" * 60_000,
        [{"type": "text", "text": "y" * 6000}, {"type": "text", "text": "z" * 6000}],
    ):
        resp = await ready.post(
            "/v1/chat/completions", json=chat(model, content, stream=True), headers=KEY
        )
        assert resp.status == 400, await resp.text()
        err = _envelope(await resp.json())
        assert err["param"] == "messages" and "10000" in err["message"]
    _assert_nothing_sent(sim)
    assert await ready.app[keys.STORE].fetchone("SELECT id FROM jobs") is None


async def test_chat_prompt_of_10000_characters_is_accepted(ready: TestClient, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-image", "p" * 10_000), headers=KEY
    )
    assert resp.status == 200, await resp.text()
    (call,) = sim.state.calls("POST", "/backend/video_gen")
    assert len(call.json["prompt"]) == 10_000


@pytest.mark.parametrize(
    "stamps", ["1e308,1e309", "0,inf", "nan,3", "-1,3", "0,1e6", "2,1", ["0", "1e400"]]
)
async def test_character_timestamps_out_of_range_are_400(
    ready: TestClient, sim: Sim, stamps: Any
) -> None:
    body = chat(
        "sora-video-landscape-10s",
        [{"type": "video_url", "video_url": {"url": data_url(mp4_bytes(), "video/mp4")}}],
        character_options={"timestamps": stamps},
    )
    resp = await ready.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 400, await resp.text()
    err = _envelope(await resp.json())
    assert err["param"] == "character_options.timestamps"
    _assert_nothing_sent(sim)


# -- item 13: every setting has a range or a format -------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("upstream.poll_interval", 0),
        ("upstream.poll_interval", 1e9),
        ("upstream.video_timeout", 0),
        ("upstream.video_timeout", 1e308),
        ("upstream.image_timeout", 0),
        ("generation.queue_timeout", 0),
        ("generation.queue_timeout", 1e308),
        ("storage.media_ttl", 0),
        ("storage.media_ttl", 10**12),
        ("server.public_url", "javascript:alert(1)//"),
        ("server.public_url", "https://"),
        ("server.public_url", "https://x.example/?a=1"),
        ("upstream.proxy", "http://"),
        ("upstream.proxy", "http://:8080"),
        ("upstream.proxy", "ftp://proxy.example:21"),
        ("upstream.proxy", "http://proxy.example:99999"),
        ("upstream.user_agent", "Sora\r\nX-Evil: 1"),
        ("upstream.user_agent", ""),
        ("upstream.third_party_url", "https://cdn.example/video.mp4"),
        ("upstream.third_party_url", "file:///etc/{post_id}"),
        ("generation.watermark_custom_url", "gopher://x.example"),
        ("generation.watermark_custom_token", "tok\nen"),
        ("pool.image_concurrency", 0),
        ("pool.video_concurrency", 10**9),
        ("pool.error_ban_threshold", 10**9),
        ("pool.refresh_window", 0),
        ("pool.refresh_interval", 0),
        ("pool.refresh_interval", float("1e20")),
        ("pool.cooldown_base", 0),
        ("pool.cooldown_max", 1e12),
    ],
)
async def test_settings_out_of_range_are_400_naming_key_and_range(
    client: TestClient, key: str, value: Any
) -> None:
    headers = await admin_headers(client)
    before = client.app[keys.SETTINGS].describe()
    resp = await client.put("/api/admin/settings", json={"values": {key: value}}, headers=headers)
    assert resp.status == 400, await resp.text()
    err = _envelope(await resp.json())
    assert err["param"] == key and key in err["message"]
    # The message says what is allowed: a range "from A to B" or the format.
    assert " to " in err["message"] or "must" in err["message"], err["message"]
    assert client.app[keys.SETTINGS].describe() == before
    stored = await client.app[keys.STORE].fetchall(
        "SELECT key FROM settings WHERE key LIKE 'cfg.%'"
    )
    assert stored == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("upstream.poll_interval", 0), ("upstream.video_timeout", 1e308), ("storage.media_ttl", 0)],
)
async def test_settings_range_message_names_the_bounds(
    client: TestClient, key: str, value: Any
) -> None:
    from sora2api.config_rules import RANGES

    lo, hi = RANGES[tuple(key.split("."))]  # type: ignore[index]
    headers = await admin_headers(client)
    rows = (await (await client.get("/api/admin/settings", headers=headers)).json())["settings"]
    assert next(r for r in rows if r["key"] == key)["range"] == [lo, hi]
    resp = await client.put("/api/admin/settings", json={"values": {key: value}}, headers=headers)
    message = _envelope(await resp.json())["message"]
    assert f"from {lo:g} to {hi:g}" in message, message


async def test_every_setting_has_a_range_or_a_format() -> None:
    from sora2api.config import SECTIONS, check_format, field_types
    from sora2api.config_rules import RANGES

    for section in SECTIONS:
        for key, kind in field_types(section).items():
            if kind in (int, float):
                assert (section, key) in RANGES, f"{section}.{key} has no range"
            elif kind is str:
                assert check_format(section, key) is not None, f"{section}.{key} has no format"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("upstream.poll_interval", 1.0),
        ("upstream.video_timeout", 3600),
        ("storage.media_ttl", 600),
        ("server.public_url", "https://sora.example.com/base"),
        ("server.public_url", ""),
        ("upstream.proxy", "socks5://user:pw@10.0.0.1:1080"),
        ("upstream.proxy", ""),
        ("upstream.third_party_url", "https://cdn.example/{post_id}.mp4"),
        ("generation.watermark_custom_url", "https://parser.example"),
        ("pool.error_ban_threshold", 0),
    ],
)
async def test_settings_in_range_are_saved(client: TestClient, key: str, value: Any) -> None:
    headers = await admin_headers(client)
    resp = await client.put("/api/admin/settings", json={"values": {key: value}}, headers=headers)
    assert resp.status == 200, await resp.text()
    section, name = key.split(".")
    assert getattr(getattr(client.app[keys.SETTINGS].current, section), name) == value


async def test_cooldown_max_below_cooldown_base_is_400(client: TestClient) -> None:
    headers = await admin_headers(client)
    resp = await client.put(
        "/api/admin/settings", json={"values": {"pool.cooldown_base": 600}}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    resp = await client.put(
        "/api/admin/settings", json={"values": {"pool.cooldown_max": 300}}, headers=headers
    )
    assert resp.status == 400
    err = _envelope(await resp.json())
    assert err["param"] == "pool.cooldown_max" and "cooldown_base (600)" in err["message"]
    assert client.app[keys.SETTINGS].current.pool.cooldown_max == 3600


def test_config_file_values_are_held_to_the_same_ranges(tmp_path: Any) -> None:
    from sora2api.config import ConfigError, build_config

    with pytest.raises(ConfigError, match=r"\[upstream\] poll_interval must be from"):
        build_config({"upstream": {"poll_interval": 0}}, source="config.toml")
    with pytest.raises(ConfigError, match=r"\[server\] public_url"):
        build_config({"server": {"public_url": "javascript:alert(1)//"}}, source="config.toml")
    with pytest.raises(ConfigError, match=r"\[upstream\] video_timeout must be from 1 to"):
        build_config({"upstream": {"video_timeout": 10**400}}, source="config.toml")
    with pytest.raises(ConfigError, match=r"SORA2API_UPSTREAM_PROXY"):
        build_config({}, source="config.toml", env={"SORA2API_UPSTREAM_PROXY": "http://"})


# -- item 14: no secret in any view of a setting -----------------------------------------------

_FILE_PROXY = "http://alice:file-secret-pw@proxy.example:3128"
_PANEL_PROXY = "http://proxy2.example:3128"
_FILE_TOKEN = "custom-token-from-file-1234"


async def test_settings_mask_file_values_after_a_panel_override(make_client: MakeClient) -> None:
    client = await make_client(
        upstream={"proxy": _FILE_PROXY},
        generation={"watermark_custom_token": _FILE_TOKEN},
    )
    headers = await admin_headers(client)
    resp = await client.put(
        "/api/admin/settings",
        json={
            "values": {
                "upstream.proxy": _PANEL_PROXY,
                "generation.watermark_custom_token": "panel-token-5678",
            }
        },
        headers=headers,
    )
    assert resp.status == 200, await resp.text()
    for raw in (
        await resp.text(),
        await (await client.get("/api/admin/settings", headers=headers)).text(),
    ):
        for secret in ("file-secret-pw", _FILE_TOKEN, "panel-token-5678"):
            assert secret not in raw
    rows = {r["key"]: r for r in (await resp.json())["settings"]}
    proxy = rows["upstream.proxy"]
    assert proxy["value"] == _PANEL_PROXY and proxy["source"] == "panel"
    assert (
        proxy["file_value"].startswith("http://alice:…")
        and "proxy.example:3128" in proxy["file_value"]
    )
    token = rows["generation.watermark_custom_token"]
    assert token["value"] == "…5678" and token["file_value"] == "…1234"


async def test_settings_mask_environment_values(
    sim: Sim, tmp_path: Any, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    from sora2api.app import create_app
    from sora2api.config import build_config

    from .conftest import config_for

    base = config_for(sim, tmp_path, upstream={"proxy": _FILE_PROXY})
    env_proxy = "socks5://bob:env-secret-pw@proxy3.example:1080"
    config = build_config(
        {"upstream": {"proxy": _FILE_PROXY, "base_url": base.upstream.base_url}},
        source="test",
        env={"SORA2API_UPSTREAM_PROXY": env_proxy},
        base_dir=str(tmp_path),
    )
    client = await aiohttp_client(create_app(config.replace(storage=base.storage, auth=base.auth)))
    headers = await admin_headers(client)
    raw = await (await client.get("/api/admin/settings", headers=headers)).text()
    assert "env-secret-pw" not in raw and "file-secret-pw" not in raw
    rows = {
        r["key"]: r
        for r in (await (await client.get("/api/admin/settings", headers=headers)).json())[
            "settings"
        ]
    }
    assert rows["upstream.proxy"]["source"] == "env" and rows["upstream.proxy"]["locked"]
    assert "proxy3.example:1080" in rows["upstream.proxy"]["value"]


async def test_a_stored_value_now_out_of_range_is_skipped_at_start(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    settings = client.app[keys.SETTINGS]
    # Saved by an older release that accepted it.
    await settings.set_value("cfg.upstream.poll_interval", 0)
    await settings.set_value("cfg.storage.media_ttl", 600)
    await settings.load()
    assert settings.current.upstream.poll_interval == 0.05  # config.toml's, not 0
    assert settings.current.storage.media_ttl == 600
    assert "ignoring stored setting upstream.poll_interval" in caplog.text
