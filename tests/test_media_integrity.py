"""The media cache serves only what it claims: guarded hops, checked bytes, bounded stalls and disk."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sora2api import keys
from sora2api.simulator import mp4_bytes, png

from .conftest import KEY, Sim
from .helpers import add_token

MakeClient = Callable[..., Awaitable[TestClient]]
MakeServer = Callable[..., Awaitable[TestServer]]
HITS: web.AppKey[list[str]] = web.AppKey("test.hits", list)
VIDEO_DOWNLOAD = "/media/*/dl.mp4"  # the result, not the thumbnail (thumb.png) before it


async def ready(make_client: MakeClient, sim: Sim, **sections: dict[str, Any]) -> TestClient:
    client = await make_client(**sections)
    sim.state.settings.video_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


async def video(client: TestClient, prompt: str = "a cat on a piano") -> dict[str, Any]:
    """Create a video through /v1/videos and poll it like a client until it ends."""
    resp = await client.post("/v1/videos", json={"prompt": prompt}, headers=KEY)
    assert resp.status == 200, await resp.text()
    video_id = (await resp.json())["id"]
    async with asyncio.timeout(60):
        while True:
            resp = await client.get(f"/v1/videos/{video_id}", headers=KEY)
            body: dict[str, Any] = await resp.json()
            if body["status"] in ("completed", "failed"):
                return body
            await asyncio.sleep(0.03)


def cached(client: TestClient) -> list[str]:
    """The finished files in the media folder (no .part)."""
    folder = client.app[keys.MEDIA].dir
    return sorted(n for n in os.listdir(folder) if not n.endswith(".part"))


def cached_videos(client: TestClient) -> list[str]:
    return [n for n in cached(client) if not n.endswith((".png", ".jpg", ".webp"))]


async def content(client: TestClient, video_id: str) -> tuple[int, bytes]:
    resp = await client.get(f"/v1/videos/{video_id}/content", headers=KEY)
    return resp.status, await resp.read()


# --- item 12: a result that is not what it claims is never served ---


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("json_error_200", "Blob storage is temporarily unavailable"),
        ("empty_body_200", "empty body"),
    ],
)
async def test_a_200_that_is_not_a_video_fails_the_job(
    make_client: MakeClient, sim: Sim, kind: str, said: str
) -> None:
    client = await ready(make_client, sim)
    sim.state.inject("GET", VIDEO_DOWNLOAD, kind)
    done = await video(client)
    assert done["status"] == "failed", done
    assert "Caching failed" in done["error"]["message"] and said in done["error"]["message"]
    assert "MP4" in done["error"]["message"]
    (download,) = sim.state.calls("GET", VIDEO_DOWNLOAD)
    assert download.fault == kind and download.status == 200
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1
    assert cached_videos(client) == []
    status, _ = await content(client, done["id"])
    assert status == 409


async def test_a_json_error_body_on_an_image_fails_the_image(
    make_client: MakeClient, sim: Sim
) -> None:
    client = await ready(make_client, sim)
    sim.state.settings.image_seconds = 20
    sim.state.inject("GET", "/media/*/image.png", "json_error_200", message="quota of blob reads")
    resp = await client.post(
        "/v1/images/generations", json={"prompt": "a red fox", "size": "1024x1024"}, headers=KEY
    )
    body = await resp.json()
    assert resp.status >= 500, body
    assert "quota of blob reads" in body["error"]["message"]
    assert "image" in body["error"]["message"].lower()
    assert sim.state.calls("GET", "/media/*/image.png")[0].fault == "json_error_200"
    assert [n for n in cached(client) if n.endswith(".png")] == []


async def test_real_files_are_checked_and_served(make_client: MakeClient, sim: Sim) -> None:
    client = await ready(make_client, sim)
    done = await video(client)
    assert done["status"] == "completed", done
    status, body = await content(client, done["id"])
    assert status == 200 and body[4:8] == b"ftyp"
    assert len(cached_videos(client)) == 1


async def test_a_stalled_download_ends_at_the_configured_timeout(
    make_client: MakeClient, sim: Sim
) -> None:
    client = await ready(make_client, sim, upstream={"request_timeout": 1.5})
    sim.state.inject("GET", VIDEO_DOWNLOAD, "stall_body", seconds=120)
    done = await video(client)
    assert done["status"] == "failed", done
    assert "no data from" in done["error"]["message"]
    assert "for 1.5 s" in done["error"]["message"]
    assert sim.state.calls("GET", VIDEO_DOWNLOAD)[0].fault == "stall_body"
    assert cached_videos(client) == []
    assert [n for n in os.listdir(client.app[keys.MEDIA].dir) if n.endswith(".part")] == []


# --- item 8: every hop of every server-side fetch goes through the URL guard ---


@pytest.fixture
async def private_host(aiohttp_server: MakeServer) -> TestServer:
    """A loopback server standing for an internal service: it records every request it gets."""

    async def handler(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path)
        return web.Response(body=mp4_bytes(), content_type="video/mp4")

    app = web.Application()
    app[HITS] = []
    app.router.add_get("/{tail:.*}", handler)
    return await aiohttp_server(app)


def hits(server: TestServer) -> list[str]:
    return server.app[HITS]


async def test_upstream_media_redirect_to_a_private_address_is_refused(
    make_client: MakeClient, sim: Sim, private_host: TestServer
) -> None:
    # The simulator's own origin is trusted (it is the configured upstream), so the first hop
    # passes; the redirect target is another loopback origin, which only the hop check refuses.
    client = await ready(make_client, sim)
    target = str(private_host.make_url("/internal/admin.mp4"))
    sim.state.inject("GET", VIDEO_DOWNLOAD, "redirect", location=target)
    done = await video(client)
    assert done["status"] == "failed", done
    message = done["error"]["message"]
    assert "Refusing to fetch" in message and "127.0.0.1 is not a public address" in message
    assert "redirected from" in message
    assert hits(private_host) == []
    assert sim.state.calls("GET", VIDEO_DOWNLOAD)[0].status == 302
    assert cached_videos(client) == []


async def test_the_same_redirect_is_followed_when_private_urls_are_allowed(
    make_client: MakeClient, sim: Sim, private_host: TestServer
) -> None:
    client = await ready(make_client, sim, security={"allow_private_urls": True})
    target = str(private_host.make_url("/internal/admin.mp4"))
    sim.state.inject("GET", VIDEO_DOWNLOAD, "redirect", location=target)
    done = await video(client)
    assert done["status"] == "completed", done
    assert hits(private_host) == ["/internal/admin.mp4"]


async def test_redirects_within_the_upstream_are_followed(
    make_client: MakeClient, sim: Sim
) -> None:
    client = await ready(make_client, sim)
    sim.state.inject("GET", VIDEO_DOWNLOAD, "redirect")  # to /cdn/media/... on the same host
    done = await video(client)
    assert done["status"] == "completed", done
    assert sim.state.calls("GET", "/cdn/media/*/dl.mp4")[0].status == 200


async def test_redirect_chains_are_bounded(make_client: MakeClient, sim: Sim) -> None:
    client = await ready(make_client, sim)
    sim.state.inject("GET", "/*media/*/dl.mp4", "redirect", times=None, location="/media/x/dl.mp4")
    done = await video(client)
    assert done["status"] == "failed", done
    assert "more than 5 redirects" in done["error"]["message"]
    assert len(sim.state.calls("GET", "/*media/*/dl.mp4")) == 6


async def test_watermark_free_third_party_redirect_is_refused(
    make_client: MakeClient, sim: Sim, private_host: TestServer
) -> None:
    client = await ready(
        make_client, sim, generation={"watermark_free": True, "watermark_fallback": False}
    )
    sim.state.inject(
        "GET", "/thirdparty/MP4/*", "redirect", location=str(private_host.make_url("/x.mp4"))
    )
    done = await video(client)
    assert done["status"] == "failed", done
    assert "Refusing to fetch" in done["error"]["message"]
    assert hits(private_host) == []
    # The post published for the clean file is still taken down.
    assert len(sim.state.calls("DELETE", "/backend/project_y/post/*")) == 1


async def test_custom_parser_link_to_a_private_address_is_refused(
    make_client: MakeClient, sim: Sim, private_host: TestServer
) -> None:
    client = await ready(
        make_client,
        sim,
        generation={
            "watermark_free": True,
            "watermark_fallback": False,
            "watermark_parse_method": "custom",
            "watermark_custom_url": sim.url,
            "watermark_custom_token": sim.state.settings.custom_parser_token,
        },
    )
    link = str(private_host.make_url("/secret.mp4"))
    sim.state.inject("POST", "/get-sora-link", "custom", status=200, json={"download_link": link})
    done = await video(client)
    assert done["status"] == "failed", done
    assert (
        "Refusing to fetch" in done["error"]["message"]
        and "/secret.mp4" in done["error"]["message"]
    )
    assert hits(private_host) == []
    assert sim.state.calls("POST", "/get-sora-link")[0].fault == "custom"


# --- item 10: the media folder has a size cap and a free-disk floor ---


async def test_cache_size_cap_fails_the_job_and_the_pruner_frees_room(
    make_client: MakeClient, sim: Sim
) -> None:
    client = await ready(
        make_client, sim, storage={"media_cache_max_mb": 1, "prune_interval": 0.05}
    )
    sim.state.settings.video_bytes = 600_000
    first = await video(client, "first")
    assert first["status"] == "completed", first
    second = await video(client, "second")
    assert second["status"] == "failed", second
    message = second["error"]["message"]
    assert "cache full" in message.lower() and "storage.media_cache_max_mb" in message
    assert len(cached_videos(client)) == 1
    assert [n for n in os.listdir(client.app[keys.MEDIA].dir) if n.endswith(".part")] == []
    # Expire what is cached: the running pruner removes it and the room is usable again.
    folder: Path = client.app[keys.MEDIA].dir
    then = time.time() - 10 * 24 * 3600
    for name in cached(client):
        os.utime(folder / name, (then, then))
    async with asyncio.timeout(20):
        while cached(client):  # noqa: ASYNC110 - the pruner has no event to wait on
            await asyncio.sleep(0.02)
    third = await video(client, "third")
    assert third["status"] == "completed", third
    status, body = await content(client, third["id"])
    assert status == 200 and len(body) == 600_000


async def test_free_disk_floor_fails_the_job_before_the_disk_fills(
    make_client: MakeClient, sim: Sim
) -> None:
    # No disk has an exabyte free, so every download would cross this floor.
    client = await ready(make_client, sim, storage={"media_min_free_mb": 100_000_000})
    done = await video(client)
    assert done["status"] == "failed", done
    message = done["error"]["message"]
    assert "cache full" in message.lower() and "storage.media_min_free_mb" in message
    assert cached(client) == []
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1


async def test_an_image_is_named_and_served_by_what_its_bytes_are(
    make_client: MakeClient, aiohttp_server: MakeServer
) -> None:
    # A thumbnail's extension is guessed from its link; a PNG behind ".jpg" is served as a PNG.
    png_bytes = png((1, 2, 3))

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=png_bytes, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/thumb.jpg", handler)
    server = await aiohttp_server(app)
    client = await make_client(security={"allow_private_urls": True})
    stored = await client.app[keys.MEDIA].store_url(str(server.make_url("/thumb.jpg")), ext="jpg")
    assert stored.name.endswith(".png") and stored.content_type == "image/png"
    resp = await client.get(f"/tmp/{stored.name}")
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
    assert await resp.read() == png_bytes
