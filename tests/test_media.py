"""UrlGuard, MediaCache, serve_media and media_context against real local HTTP servers."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from yarl import URL

from sora2api import keys
from sora2api.app import error_middleware, media_context
from sora2api.config import build_config
from sora2api.errors import (
    BadRequestError,
    PayloadTooLargeError,
    TimeoutError_,
    UpstreamError,
)
from sora2api.media import (
    IPAddress,
    MediaCache,
    UrlGuard,
    check_url,
    is_public_address,
)
from sora2api.routes.media import serve_media
from sora2api.settings import Settings
from sora2api.store import Store

MB = 1024 * 1024
HEX = "0123456789abcdef" * 2  # a valid 32-character name stem

MakeServer = Callable[..., Awaitable[TestServer]]
Client = TestClient[web.Request, web.Application]
MakeApp = Callable[..., Awaitable[Client]]
MakeSettings = Callable[..., Awaitable[Settings]]
SEEN: web.AppKey[list[str]] = web.AppKey("test.seen", list)
# The cache checks every file's first bytes, so the fake remote's bodies start like real files.
PNG_HEAD = b"\x89PNG\r\n\x1a\n"
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def _pattern(n: int) -> bytes:
    """n bytes of a PNG-looking body."""
    return (PNG_HEAD + bytes(i % 251 for i in range(n)))[:n]


# --- the fake remote: one small app whose routes misbehave in every way the code must handle ---


async def _bytes(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    return web.Response(body=bytes(i % 251 for i in range(n)), content_type="image/png")


async def _png(request: web.Request) -> web.Response:
    return web.Response(body=_pattern(int(request.match_info["n"])), content_type="image/png")


async def _chunked(request: web.Request) -> web.StreamResponse:
    # No Content-Length: only counting while streaming can catch the size.
    resp = web.StreamResponse(headers={"Content-Type": "image/png"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    left = int(request.match_info["n"])
    while left:
        step = min(left, 4096)
        await resp.write(b"c" * step)
        left -= step
    await resp.write_eof()
    return resp


async def _big(request: web.Request) -> web.StreamResponse:
    n = int(request.match_info["mb"]) * MB
    chunk = b"v" * (256 * 1024)  # written over and over, so the server allocates nothing per chunk
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4", "Content-Length": str(n)})
    await resp.prepare(request)
    await resp.write(MP4_HEAD + chunk[len(MP4_HEAD) :])
    for _ in range(n // len(chunk) - 1):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def _short(request: web.Request) -> web.StreamResponse:
    # Promises 1000 bytes, sends 500, then the connection closes.
    resp = web.StreamResponse(headers={"Content-Length": "1000"})
    resp.force_close()
    await resp.prepare(request)
    await resp.write(MP4_HEAD + b"s" * (500 - len(MP4_HEAD)))
    return resp


async def _drop(request: web.Request) -> web.StreamResponse:
    # Chunked, and the connection dies in the middle of the body.
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(MP4_HEAD + b"d" * 5000)
    assert request.transport is not None
    request.transport.close()
    return resp


async def _stall(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Length": "1000"})
    await resp.prepare(request)
    await resp.write(MP4_HEAD + b"t" * 76)
    await asyncio.sleep(30)  # cancelled when the client hangs up (TestServer cancels handlers)
    return resp


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


async def _loop(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    raise web.HTTPFound(f"/loop/{n + 1}")


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="nope")


async def _host(request: web.Request) -> web.Response:
    return web.Response(text=request.headers["Host"], content_type="text/plain")


@web.middleware
async def _record(request: web.Request, handler: Any) -> web.StreamResponse:
    request.app[SEEN].append(str(request.url))
    result: web.StreamResponse = await handler(request)
    return result


def remote_app() -> web.Application:
    app = web.Application(middlewares=[_record])
    app[SEEN] = []
    app.router.add_get("/bytes/{n}", _bytes)
    app.router.add_get("/png/{n}", _png)
    app.router.add_get("/chunked/{n}", _chunked)
    app.router.add_get("/big/{mb}", _big)
    app.router.add_get("/short", _short)
    app.router.add_get("/drop", _drop)
    app.router.add_get("/stall", _stall)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/loop/{n}", _loop)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/host", _host)
    return app


# --- fixtures ---


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "db.sqlite")
    assert isinstance(store, Store)
    yield store
    await store.close()


@pytest.fixture
def make_settings(tmp_path: Path, store: Store) -> MakeSettings:
    async def make(**sections: dict[str, Any]) -> Settings:
        data: dict[str, dict[str, Any]] = {"storage": {"media_dir": "media"}}
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        config = build_config(data, source="test", env={}, base_dir=str(tmp_path))
        settings = Settings(config, store)
        await settings.load()
        return settings

    return make


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def remote(aiohttp_server: MakeServer) -> TestServer:
    return await aiohttp_server(remote_app())


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


async def guard_for(
    make_settings: MakeSettings, session: aiohttp.ClientSession, **security: Any
) -> UrlGuard:
    return UrlGuard(await make_settings(security=security), session)


def media_files(cache: MediaCache) -> list[str]:
    return sorted(os.listdir(cache.dir))


# --- UrlGuard: schemes and addresses ---


@pytest.mark.parametrize(
    ("target", "scheme"),
    [
        ("file:///etc/passwd", "file:"),
        ("ftp://example.com/a.png", "ftp:"),
        ("gopher://example.com/", "gopher:"),
        ("data:image/png;base64,AAAA", "data:"),
        ("/relative/a.png", "missing"),
    ],
)
async def test_guard_refuses_non_http_schemes(
    make_settings: MakeSettings, session: aiohttp.ClientSession, target: str, scheme: str
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    with pytest.raises(BadRequestError, match=f"the {scheme} scheme is not allowed"):
        await guard.fetch(target)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "169.254.169.254",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
    ],
)
async def test_guard_refuses_private_addresses_by_default(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer, host: str
) -> None:
    guard = await guard_for(make_settings, session)
    target = f"http://{host}:{remote.port}/bytes/10?sig=secret"
    with pytest.raises(BadRequestError, match="not a public address") as info:
        await guard.fetch(target)
    assert str(URL(target).with_query(None)) in info.value.message
    assert "secret" not in info.value.message
    assert info.value.status == 400
    assert remote.app[SEEN] == []  # refused before any connection


async def test_guard_allows_loopback_when_configured(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    fetched = await guard.fetch(url(remote, "/bytes/300"))
    assert fetched.data == bytes(i % 251 for i in range(300))
    assert fetched.content_type == "image/png"
    assert fetched.final_url == url(remote, "/bytes/300")


async def test_guard_pins_the_checked_address_and_keeps_the_host_name(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    # "localhost" is resolved once by the guard; the request goes to the IP with the name in Host.
    # If localhost also resolves to ::1 (where nothing listens) this exercises the next-address try.
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    fetched = await guard.fetch(f"http://localhost:{remote.port}/host")
    assert fetched.data == f"localhost:{remote.port}".encode()
    assert fetched.final_url == f"http://localhost:{remote.port}/host"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_check_url_accepts_http_and_https_only() -> None:
    assert str(check_url("https://example.com/a.png?x=1")) == "https://example.com/a.png?x=1"
    assert check_url("HTTP://Example.com/").scheme == "http"
    with pytest.raises(BadRequestError, match="has no host"):
        check_url("http:///a.png")


# --- UrlGuard: redirects ---


class _PublicTwo(UrlGuard):
    """A guard under which 127.0.0.2 plays a public host: everything else keeps the real policy."""

    def allows(self, ip: IPAddress) -> bool:
        return str(ip) == "127.0.0.2" or super().allows(ip)


async def test_redirect_to_loopback_is_refused_after_an_allowed_first_hop(
    make_settings: MakeSettings,
    session: aiohttp.ClientSession,
    aiohttp_server: MakeServer,
    remote: TestServer,
) -> None:
    public = await aiohttp_server(remote_app(), host="127.0.0.2")
    guard = _PublicTwo(await make_settings(), session)
    # The first hop alone is allowed...
    assert (await guard.fetch(url(public, "/bytes/5"))).data == bytes(range(5))
    # ...but where it redirects is checked again, by name and by literal address.
    for target in (url(remote, "/bytes/5"), f"http://localhost:{remote.port}/bytes/5"):
        first = str(public.make_url("/redirect").with_query(to=target))
        with pytest.raises(BadRequestError, match="not a public address") as info:
            await guard.fetch(first)
        assert f"redirected from {url(public, '/redirect')}" in info.value.message
    assert remote.app[SEEN] == []
    assert len(public.app[SEEN]) == 3


async def test_redirect_to_another_scheme_is_refused(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    first = str(remote.make_url("/redirect").with_query(to="file:///etc/passwd"))
    with pytest.raises(BadRequestError, match="the file: scheme is not allowed.*redirected from"):
        await guard.fetch(first)


async def test_relative_redirect_is_followed(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    fetched = await guard.fetch(str(remote.make_url("/redirect").with_query(to="/bytes/7")))
    assert fetched.data == bytes(range(7))
    assert fetched.final_url == url(remote, "/bytes/7")


async def test_redirect_chain_stops_after_five_hops(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    with pytest.raises(BadRequestError, match="more than 5 redirects"):
        await guard.fetch(url(remote, "/loop/0"))
    assert len(remote.app[SEEN]) == 6


# --- UrlGuard: status, size and time ---


async def test_non_2xx_names_the_url_and_status_without_the_query(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    with pytest.raises(BadRequestError) as info:
        await guard.fetch(url(remote, "/status/404") + "?token=hunter2")
    assert info.value.message == f"Could not fetch {url(remote, '/status/404')}: HTTP 404"


async def test_connection_refused_is_a_bad_request(
    make_settings: MakeSettings, session: aiohttp.ClientSession
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    with pytest.raises(BadRequestError, match="cannot connect"):
        await guard.fetch(f"http://127.0.0.1:{unused_port()}/a.png")


async def test_size_cap_by_content_length(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True, fetch_max_mb=1)
    with pytest.raises(PayloadTooLargeError, match="over the 1 MB limit"):
        await guard.fetch(url(remote, f"/bytes/{MB + 1}"))
    with pytest.raises(PayloadTooLargeError, match="The video at .* over the 1000 bytes limit"):
        await guard.fetch(url(remote, "/bytes/1001"), max_bytes=1000, kind="video")
    assert len((await guard.fetch(url(remote, "/bytes/1000"), max_bytes=1000)).data) == 1000


async def test_size_cap_while_streaming_without_content_length(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True)
    with pytest.raises(PayloadTooLargeError, match="larger than the 10000 bytes limit") as info:
        await guard.fetch(url(remote, "/chunked/50000"), max_bytes=10_000)
    assert info.value.status == 413
    assert (
        await guard.fetch(url(remote, "/chunked/10000"), max_bytes=10_000)
    ).data == b"c" * 10_000


async def test_total_time_bound(
    make_settings: MakeSettings, session: aiohttp.ClientSession, remote: TestServer
) -> None:
    guard = await guard_for(make_settings, session, allow_private_urls=True, fetch_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(BadRequestError, match=r"Could not fetch .*/stall: timed out after 0.3 s"):
        await guard.fetch(url(remote, "/stall"))
    assert time.monotonic() - started < 3


# --- MediaCache: downloads ---


@pytest.fixture
async def cache(make_settings: MakeSettings, session: aiohttp.ClientSession) -> MediaCache:
    # The fake remote listens on loopback; the guard's refusals are tested in test_media_integrity.
    settings = await make_settings(
        server={"public_url": "https://media.example/"}, security={"allow_private_urls": True}
    )
    return MediaCache(settings, session)


async def test_store_url_streams_to_a_random_name(cache: MediaCache, remote: TestServer) -> None:
    cached = await cache.store_url(url(remote, "/png/1234"), ext="PNG")
    assert cached.name.endswith(".png") and len(cached.name) == 36
    assert cached.path == cache.dir / cached.name
    assert cached.path.read_bytes() == _pattern(1234)
    assert (cached.size, cached.content_type) == (1234, "image/png")
    assert cache.url_for(cached.name) == f"https://media.example/tmp/{cached.name}"
    assert cache.resolve(cached.name) == cached.path
    assert media_files(cache) == [cached.name]  # no .part left behind


async def test_store_url_of_50_mb_keeps_memory_low(cache: MediaCache, remote: TestServer) -> None:
    tracemalloc.start()
    try:
        cached = await cache.store_url(url(remote, "/big/50"), ext="mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cached.size == 50 * MB == cached.path.stat().st_size
    assert peak < 8 * MB, f"peak traced memory {peak / MB:.1f} MB"


async def test_content_length_mismatch_leaves_no_file(
    cache: MediaCache, remote: TestServer
) -> None:
    with pytest.raises(UpstreamError, match=r"Caching failed: .*dropped after 500 of 1000 bytes"):
        await cache.store_url(url(remote, "/short"), ext="mp4")
    assert media_files(cache) == []


async def test_connection_drop_leaves_no_file(cache: MediaCache, remote: TestServer) -> None:
    with pytest.raises(UpstreamError, match="Caching failed: ") as info:
        await cache.store_url(url(remote, "/drop"), ext="mp4")
    assert info.value.status == 502
    assert media_files(cache) == []


async def test_stalled_transfer_fails_on_the_read_timeout(
    cache: MediaCache, remote: TestServer
) -> None:
    with pytest.raises(TimeoutError_, match=r"Caching failed: no data from .*/stall for 0.3 s"):
        await cache.store_url(url(remote, "/stall"), ext="mp4", read_timeout=0.3)
    assert media_files(cache) == []


async def test_total_timeout_is_optional(cache: MediaCache, remote: TestServer) -> None:
    with pytest.raises(TimeoutError_, match="took longer than 0.2 s"):
        await cache.store_url(url(remote, "/stall"), ext="mp4", timeout=0.2)
    assert media_files(cache) == []


async def test_store_url_size_cap(cache: MediaCache, remote: TestServer) -> None:
    with pytest.raises(UpstreamError, match="is 2000 bytes, over the 1000 bytes limit"):
        await cache.store_url(url(remote, "/bytes/2000"), ext="png", max_bytes=1000)
    with pytest.raises(UpstreamError, match="larger than the 1000 bytes limit"):
        await cache.store_url(url(remote, "/chunked/2000"), ext="png", max_bytes=1000)
    assert media_files(cache) == []


async def test_store_url_upstream_status_and_bad_extension(
    cache: MediaCache, remote: TestServer
) -> None:
    with pytest.raises(UpstreamError, match=r"Caching failed: HTTP 403 from .*/status/403: nope$"):
        await cache.store_url(url(remote, "/status/403") + "?sig=abc", ext="mp4")
    with pytest.raises(BadRequestError, match=r"Unsupported media type \.html"):
        await cache.store_url(url(remote, "/bytes/10"), ext="html")
    assert media_files(cache) == []


async def test_store_url_through_an_http_proxy(
    cache: MediaCache, aiohttp_server: MakeServer
) -> None:
    # The proxy is a plain aiohttp app: it gets the absolute-form request and answers it itself.
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.Response(body=MP4_HEAD + b"via-proxy")

    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy)
    server = await aiohttp_server(app)
    cached = await cache.store_url(
        "http://videos.invalid/v.mp4?sig=1", ext="mp4", proxy=url(server, "/").rstrip("/")
    )
    assert cached.path.read_bytes() == MP4_HEAD + b"via-proxy"
    assert seen == ["http://videos.invalid/v.mp4?sig=1"]


async def test_store_bytes(
    cache: MediaCache, make_settings: MakeSettings, session: aiohttp.ClientSession
) -> None:
    cached = await cache.store_bytes(b"GIF89a...", ext=".gif")
    assert cached.path.read_bytes() == b"GIF89a..."
    assert (cached.size, cached.content_type) == (9, "image/gif")
    assert media_files(cache) == [cached.name]
    small = MediaCache(await make_settings(storage={"media_max_mb": 0}), session)
    with pytest.raises(PayloadTooLargeError):
        await small.store_bytes(b"x", ext="png")


# --- MediaCache: names, expiry, pruning ---


def _put(cache: MediaCache, name: str, age: float = 0.0, data: bytes = b"data") -> Path:
    path = cache.dir / name
    path.write_bytes(data)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e",
        "..",
        "",
        f"{HEX.upper()}.png",
        f"{HEX}.html",
        f"{HEX}.png.part",
        f"{HEX}.png\n",
        f"{HEX[:-1]}.png",
        f"{HEX}0.png",
        f"/{HEX}.png",
        f"sub/{HEX}.png",
    ],
)
def test_resolve_rejects_names_the_cache_cannot_make(cache: MediaCache, name: str) -> None:
    assert cache.resolve(name) is None
    assert cache.expires_at(name) is None
    assert cache.delete(name) is False


async def test_resolve_expiry_follows_the_live_ttl(
    make_settings: MakeSettings, session: aiohttp.ClientSession
) -> None:
    settings = await make_settings()
    cache = MediaCache(settings, session)
    name = f"{HEX}.mp4"
    path = _put(cache, name, age=100)
    assert cache.resolve(name) == path  # default ttl 3600
    expires = cache.expires_at(name)
    assert expires is not None and abs(expires - (path.stat().st_mtime + 3600)) < 1e-6
    await settings.update({"storage.media_ttl": 60})  # the panel changes it at run time
    assert cache.resolve(name) is None
    (cache.dir / f"{'f' * 32}.png").mkdir()  # a directory is never served
    assert cache.resolve(f"{'f' * 32}.png") is None


def test_delete(cache: MediaCache) -> None:
    _put(cache, f"{HEX}.webm")
    assert cache.delete(f"{HEX}.webm") is True
    assert cache.delete(f"{HEX}.webm") is False
    assert media_files(cache) == []


def test_prune_removes_expired_and_abandoned_files_only(cache: MediaCache) -> None:
    old = _put(cache, f"{'a' * 32}.mp4", age=3700)
    fresh = _put(cache, f"{'b' * 32}.png", age=10)
    old_part = _put(cache, f"{'c' * 32}.mp4.part", age=3700)
    busy_part = _put(cache, f"{'d' * 32}.mp4.part", age=60)
    foreign = _put(cache, "notes.txt", age=99999)
    assert cache.prune() == 2
    assert not old.exists() and not old_part.exists()
    assert fresh.exists() and busy_part.exists() and foreign.exists()
    assert cache.prune() == 0


async def test_pruner_survives_errors(
    caplog: pytest.LogCaptureFixture, make_settings: MakeSettings, session: aiohttp.ClientSession
) -> None:
    fast = MediaCache(await make_settings(storage={"prune_interval": 0.05}), session)
    shutil.rmtree(fast.dir)  # scandir fails until the directory is back
    task = asyncio.create_task(fast.run_pruner())
    try:
        with caplog.at_level(logging.ERROR, logger="sora2api.media"):
            for _ in range(100):
                await asyncio.sleep(0.02)
                if any("media pruning failed" in r.message for r in caplog.records):
                    break
            assert any("media pruning failed" in r.message for r in caplog.records)
        fast.dir.mkdir()
        old = _put(fast, f"{HEX}.mp4", age=4000)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not old.exists():
                break
        assert not old.exists()
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- serve_media and media_context in a real app ---


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[keys.HTTP] = session
        yield


@pytest.fixture
def make_app(make_settings: MakeSettings, aiohttp_client: MakeApp) -> MakeApp:
    async def make(**sections: dict[str, Any]) -> Client:
        app = web.Application(middlewares=[error_middleware])
        app[keys.SETTINGS] = await make_settings(**sections)
        app.cleanup_ctx.append(_http_ctx)
        app.cleanup_ctx.append(media_context)
        app.router.add_get("/tmp/{name}", serve_media)
        return await aiohttp_client(app)

    return make


async def test_serve_media_full_range_and_head(
    make_app: MakeApp,
) -> None:
    client = await make_app()
    media = client.app[keys.MEDIA]
    assert isinstance(client.app[keys.GUARD], UrlGuard)
    data = MP4_HEAD + bytes(range(256)) * 40
    cached = await media.store_bytes(data, ext="mp4")

    resp = await client.get(f"/tmp/{cached.name}")
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    max_age = int(resp.headers["Cache-Control"].removeprefix("public, max-age="))
    assert 3590 <= max_age <= 3600

    resp = await client.get(f"/tmp/{cached.name}", headers={"Range": "bytes=100-199"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert await resp.read() == data[100:200]

    resp = await client.head(f"/tmp/{cached.name}")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(data))


@pytest.mark.parametrize(
    "path",
    [
        f"/tmp/{HEX}.mp4",
        "/tmp/..%2f..%2fetc%2fpasswd",
        "/tmp/%2e%2e",
        f"/tmp/{HEX.upper()}.mp4",
    ],
)
async def test_serve_media_404_envelope(make_app: MakeApp, path: str) -> None:
    client = await make_app()
    # encoded=True sends the path as written: yarl would otherwise resolve the dot segments.
    resp = await client.get(URL(path, encoded=True))
    assert resp.status == 404
    assert await resp.json() == {
        "error": {
            "message": "Media file not found or expired",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
    }


async def test_serve_media_hides_expired_files(
    make_app: MakeApp,
) -> None:
    client = await make_app(storage={"prune_interval": 3600})
    media = client.app[keys.MEDIA]
    cached = await media.store_bytes(PNG_HEAD + b"old", ext="png")
    then = time.time() - 4000
    os.utime(cached.path, (then, then))
    assert (await client.get(f"/tmp/{cached.name}")).status == 404
    assert cached.path.exists()  # hidden at once, deleted later by the pruner


async def test_pruner_runs_in_the_cleanup_context_and_stops(
    make_app: MakeApp, tmp_path: Path
) -> None:
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    stale = media_dir / f"{'e' * 32}.mp4"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 4000,) * 2)

    client = await make_app(storage={"prune_interval": 0.05})

    def pruners() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "sora2api.media.pruner"]

    for _ in range(100):
        if not stale.exists():
            break
        await asyncio.sleep(0.02)
    assert not stale.exists()  # pruned on start
    later = media_dir / f"{'f' * 32}.png"
    later.write_bytes(b"y")
    os.utime(later, (time.time() - 4000,) * 2)
    for _ in range(100):
        if not later.exists():
            break
        await asyncio.sleep(0.02)
    assert not later.exists()  # and again on the next pass
    assert len(pruners()) == 1

    await client.close()
    assert pruners() == []
