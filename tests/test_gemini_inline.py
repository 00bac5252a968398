"""The streamed inline-video extractor: base64 inside JSON decoded to disk, chunk by chunk."""

from __future__ import annotations

import base64
import hashlib
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sora2api.providers.base import Account, Submission
from sora2api.providers.gemini import GeminiProvider
from sora2api.providers.gemini.inline import InlineExtractor
from sora2api.providers.gemini.models import OMNI, specs_for
from sora2api.simulator import create_simulator
from sora2api.simulator.media import Mp4
from sora2api.simulator.providers import PROVIDER_STATE
from sora2api.upstream.errors import Kind, UpstreamFailure

MB = 1 << 20


def _read(path: str) -> bytes:
    """A file's bytes (sync: a test's few MB)."""
    return Path(path).read_bytes()


def _listing(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _video(n: int) -> bytes:
    # Varied bytes, so every base64 alphabet character shows up.
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n // 32 + 1))[:n]


def _interaction(b64: str, *, echo: str | None = None) -> bytes:
    steps = []
    if echo is not None:
        steps.append(
            f'{{"type":"user_input","content":[{{"type":"image","data":"{echo}",'
            '"mime_type":"image/png"}]}'
        )
    steps.append(
        '{"type" : "model_output", "content": [{"type":"video", "data" :\n "'
        + b64
        + '", "mime_type":"video/mp4"}]}'
    )
    return (
        '{"id":"v1_x","status":"completed","note":"a \\"data\\": trap","steps":['
        + ",".join(steps)
        + '],"usage":{"total_tokens":3}}'
    ).encode()


def _run(body: bytes, tmp_path: Path, sizes: Iterator[int]) -> tuple[Any, InlineExtractor]:
    ex = InlineExtractor(tmp_path, max_body=len(body) + 1)
    pos = 0
    while pos < len(body):
        n = next(sizes)
        ex.feed(body[pos : pos + n])
        pos += n
    return ex.finish(), ex


def _video_path(data: Any, ex: InlineExtractor) -> Path:
    part = data["steps"][-1]["content"][0]
    path = ex.blob(part["data"])
    assert path is not None
    return path


@pytest.mark.parametrize("split", ["bytewise", "random", "whole"])
def test_split_anywhere_gives_the_same_file(tmp_path: Path, split: str) -> None:
    video = _video(10_001)
    body = _interaction(base64.b64encode(video).decode(), echo=base64.b64encode(b"img").decode())
    rng = random.Random(split)
    sizes = {
        "bytewise": iter(lambda: 1, 0),
        "random": iter(lambda: rng.randint(1, 700), 0),
        "whole": iter(lambda: len(body), 0),
    }[split]
    data, ex = _run(body, tmp_path, sizes)
    assert data["status"] == "completed" and data["usage"] == {"total_tokens": 3}
    assert data["note"] == 'a "data": trap'  # an escaped quote is not a key
    assert _video_path(data, ex).read_bytes() == video
    assert ex.blob(data["steps"][0]["content"][0]["data"]).read_bytes() == b"img"  # type: ignore[union-attr]


def test_unpadded_urlsafe_and_escaped_base64(tmp_path: Path) -> None:
    video = _video(1000) + b"\xfb\xff"  # ends in a partial group; has '+' and '/' in base64
    text = base64.urlsafe_b64encode(video).decode().rstrip("=")
    data, ex = _run(_interaction(text), tmp_path, iter(lambda: 7, 0))
    assert _video_path(data, ex).read_bytes() == video
    escaped = base64.b64encode(video).decode().replace("/", "\\/")
    escaped = escaped[:40] + "\\n" + escaped[40:]
    data, ex = _run(_interaction(escaped), tmp_path, iter(lambda: 5, 0))
    assert _video_path(data, ex).read_bytes() == video


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("QUJD*EFG", "invalid base64"),
        ("QUJDR", "truncated"),
        ("QQ==QUJD", "after its padding"),
        ("QUJD\\u0041", "escape"),
    ],
)
def test_broken_base64_is_malformed_and_leaves_no_file(
    tmp_path: Path, text: str, words: str
) -> None:
    ex = InlineExtractor(tmp_path, max_body=1 << 20)
    with pytest.raises(UpstreamFailure) as err:
        for i in range(0, len(body := _interaction(text)), 4):
            ex.feed(body[i : i + 4])
        ex.finish()
    assert err.value.kind is Kind.MALFORMED and words in err.value.message
    ex.discard()
    assert list(tmp_path.iterdir()) == []


def test_body_over_the_limit_and_truncated_body(tmp_path: Path) -> None:
    body = _interaction(base64.b64encode(_video(3000)).decode())
    ex = InlineExtractor(tmp_path, max_body=len(body) - 1)
    with pytest.raises(UpstreamFailure) as err:
        ex.feed(body)
    assert err.value.kind is Kind.MALFORMED and "larger than" in err.value.message
    ex = InlineExtractor(tmp_path, max_body=len(body))
    ex.feed(body[: len(body) // 2])
    with pytest.raises(UpstreamFailure, match="mid-string"):
        ex.finish()
    ex.discard()  # what status() does on any failure
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_bounded_for_a_large_video(tmp_path: Path) -> None:
    size = 24 * MB  # 32 MB of base64: held whole, it would show in the peak many times over
    head, tail = _interaction("@").split(b"@")
    quantum = 3 * 4096  # a whole number of base64 groups per piece

    def body() -> Iterator[bytes]:
        yield head
        for i in range(0, size, quantum):
            yield base64.b64encode(_piece(i, quantum))
        yield tail

    def _piece(i: int, n: int) -> bytes:
        return (hashlib.sha256(i.to_bytes(8, "big")).digest() * (n // 32 + 1))[:n]

    ex = InlineExtractor(tmp_path, max_body=64 * MB)
    tracemalloc.start()
    try:
        for chunk in body():
            ex.feed(chunk)
        data = ex.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    path = _video_path(data, ex)
    assert path.stat().st_size == size
    assert peak < 1 * MB, peak
    with path.open("rb") as f:
        assert f.read(quantum) == _piece(0, quantum)
        f.seek(size - quantum)
        assert f.read() == _piece(size - quantum, quantum)


async def test_status_decodes_a_large_inline_video_through_small_reads(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    import aiohttp

    app = create_simulator(time_scale=1.0, seed=3)
    server = await aiohttp_server(app)
    ps = app[PROVIDER_STATE]
    sim_account = ps.add_account("gemini", name="g1")
    account = Account(1, "gemini", sim_account.key, str(server.make_url("")))
    provider = GeminiProvider(staging_dir=tmp_path, read_size=1000)
    size = 3 * MB + 17
    async with aiohttp.ClientSession() as http:
        async with http.post(
            server.make_url("/_sim/scenario"), json={"email": "g1", "video_bytes": size}
        ) as resp:
            assert resp.status < 300, await resp.text()
        spec = next(s for s in specs_for(OMNI) if s.id == OMNI)
        task_id = await provider.submit(http, account, Submission(spec, "a big one"))
        ps.sim.advance(10_000)
        done = await provider.status(http, account, task_id)
        small = GeminiProvider(staging_dir=tmp_path, max_video_bytes=1 * MB)
        with pytest.raises(UpstreamFailure) as err:
            await small.status(http, account, task_id)
    assert err.value.kind is Kind.MALFORMED and "larger than" in err.value.message
    (video,) = done.outputs
    assert video.path is not None
    expected = Mp4(size=size, seed=f"{task_id}/video").to_bytes()
    assert _read(video.path) == expected
    assert _listing(tmp_path) == [Path(video.path)]  # the refused body left nothing


async def test_media_cache_adopts_the_file_without_reading_it_whole(tmp_path: Path) -> None:
    import aiohttp

    from sora2api.config import build_config
    from sora2api.media import MediaCache, MediaFailure
    from sora2api.settings import Settings
    from sora2api.store import Store

    store = await Store.open(tmp_path / "db.sqlite")
    try:
        data = {"storage": {"media_dir": "media", "media_max_mb": 1}}
        settings = Settings(
            build_config(data, source="test", env={}, base_dir=str(tmp_path)), store
        )
        await settings.load()
        async with aiohttp.ClientSession() as http:
            cache = MediaCache(settings, http)
            video = Mp4(size=300_000, seed="adopt").to_bytes()
            staged = _write(cache.dir / f"{'a' * 32}.mp4.part", video)
            cached = await cache.adopt_file(staged, ext="mp4")
            assert cached.content_type == "video/mp4" and cached.size == len(video)
            assert cache.resolve(cached.name) == cached.path and _read(str(cached.path)) == video
            assert _listing(cache.dir) == [cached.path]  # the staged file was moved
            # Not a video, or over storage.media_max_mb: refused, and the staged file is gone.
            for body, words in ((b"<html>oops</html>", "instead of"), (video * 4, "over the")):
                staged = _write(tmp_path / "staged.part", body)
                with pytest.raises(MediaFailure) as err:
                    await cache.adopt_file(staged, ext="mp4")
                assert words in err.value.message
                assert not staged.exists() and _listing(cache.dir) == [cached.path]
    finally:
        await store.close()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
