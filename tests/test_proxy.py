"""Upstream proxies: the global one, a token's own one overriding it, HTTP and SOCKS5."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from .conftest import KEY, Sim
from .helpers import add_token, chat


class ForwardProxy:
    """A plain HTTP forward proxy (absolute-form requests), recording what passed through it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        assert self.session is not None
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "proxy-connection")
        }
        async with self.session.request(
            request.method,
            request.url,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                content_type=upstream.content_type or "application/json",
            )


@pytest.fixture
async def http_proxies(aiohttp_server) -> AsyncIterator[list[tuple[ForwardProxy, str]]]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            proxy = ForwardProxy()
            proxy.session = session
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", proxy.handle)
            server = await aiohttp_server(app)
            out.append((proxy, f"http://127.0.0.1:{server.port}"))
        yield out


async def test_token_proxy_overrides_the_global_one(make_client, sim: Sim, http_proxies) -> None:
    (global_proxy, global_url), (own_proxy, own_url) = http_proxies
    client = await make_client(upstream={"proxy": global_url})
    sim.state.settings.image_seconds = 20
    a, b = sim.state.add_account(), sim.state.add_account()
    await add_token(client, a, proxy=own_url)
    await add_token(client, b)
    global_proxy.seen.clear()
    own_proxy.seen.clear()
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
        assert resp.status == 200, await resp.text()
    creates = sim.state.calls("POST", "/backend/video_gen")
    by_email = {c.account_email for c in creates}
    assert by_email == {a.email, b.email}  # round robin used both tokens
    assert (
        "POST /backend/video_gen" in own_proxy.seen
        and "POST /backend/video_gen" in global_proxy.seen
    )
    assert own_proxy.seen.count("POST /backend/video_gen") == 1
    assert global_proxy.seen.count("POST /backend/video_gen") == 1
    # the media download of token a's image went through a's proxy too
    assert any(s.startswith("GET /media/") for s in own_proxy.seen)
    assert any(s.startswith("GET /media/") for s in global_proxy.seen)


async def _socks5_server() -> tuple[asyncio.AbstractServer, list[tuple[str, int]]]:
    """A minimal SOCKS5 server (no auth, CONNECT only) that records its targets."""
    targets: list[tuple[str, int]] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ver, n = await reader.readexactly(2)
        await reader.readexactly(n)
        writer.write(b"\x05\x00")
        _, cmd, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            writer.close()
            return
        (port,) = struct.unpack(">H", await reader.readexactly(2))
        targets.append((host, port))
        up_reader, up_writer = await asyncio.open_connection(host, port)
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, targets


async def test_global_socks5_proxy(make_client, sim: Sim) -> None:
    server, targets = await _socks5_server()
    port = server.sockets[0].getsockname()[1]
    try:
        client = await make_client(upstream={"proxy": f"socks5://127.0.0.1:{port}"})
        sim.state.settings.image_seconds = 20
        await add_token(client, sim.state.add_account())
        resp = await client.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
        assert resp.status == 200, await resp.text()
        assert (
            orjson.loads((await resp.json())["choices"][0]["message"]["content"])["type"] == "image"
        )
        assert targets and all(t == ("127.0.0.1", sim.server.port) for t in targets)
    finally:
        server.close()
        await server.wait_closed()
