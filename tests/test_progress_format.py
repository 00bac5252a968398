"""Progress as an object or as text lines: the chunk shapes, the override, and LiteLLM as a client."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from sora2api.jobs import Event
from sora2api.progress_text import ProgressText, duration

from .conftest import API_KEY, KEY, Sim
from .helpers import add_token, admin_headers, chat, final_result, read_sse

IMAGE_CREATE = ("POST", "/backend/video_gen")
VIDEO_CREATE = ("POST", "/backend/nf/create")
PENDING = "/backend/nf/pending*"


def _deltas(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["choices"][0]["delta"] for f in frames if "choices" in f]


async def _stream(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    frames, _ = await read_sse(resp)
    return frames


def _assert_text_stream(frames: list[dict[str, Any]]) -> list[str]:
    """Every chunk carries a string; each non-empty one is exactly one line. Returns the lines."""
    deltas = _deltas(frames)
    assert all(isinstance(d["reasoning_content"], str) for d in deltas), deltas
    lines = [d["reasoning_content"] for d in deltas if d["reasoning_content"]]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines), lines
    return lines


# -- HTTP: the two formats ---------------------------------------------------------------------


async def test_object_format_is_the_default_and_unchanged(client: TestClient, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    frames = await _stream(client, chat("sora-image", "a cat", stream=True))
    deltas = _deltas(frames)
    job_id = frames[0]["job_id"]
    first = deltas[0]
    assert first["role"] == "assistant" and first["content"] is None
    assert set(first["reasoning_content"]) == {"stage", "status", "message", "details", "timestamp"}
    assert first["reasoning_content"]["message"] == f"Job {job_id} accepted"
    middle = deltas[1:-1]
    assert middle and all(isinstance(d["reasoning_content"], dict) for d in middle)
    assert any(
        d["reasoning_content"]["status"] == "processing" and "progress" in d["reasoning_content"]
        for d in middle
    )
    last = deltas[-1]
    assert last["reasoning_content"] is None
    assert final_result(frames)["type"] == "image"
    assert len(sim.state.calls(*IMAGE_CREATE)) == 1


async def test_text_format_sends_one_line_per_step(make_client: Any, sim: Sim) -> None:
    client = await make_client(generation={"progress_format": "text"})
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    frames = await _stream(client, chat("sora-image", "a cat", stream=True))
    job_id = frames[0]["job_id"]
    lines = _assert_text_stream(frames)
    deltas = _deltas(frames)
    assert deltas[0] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": f"Job {job_id} accepted\n",
    }
    # Sora gives percentages: they are the upstream's, in the seed's words.
    progress = [line for line in lines if "% completed" in line]
    assert progress and all(
        re.fullmatch(r"Image generation in progress: \d+% completed\.\.\.\n", line)
        for line in progress
    ), progress
    assert "Files cached\n" in lines
    # The final chunk: the same JSON content as in object mode, and an empty string of progress.
    last = deltas[-1]
    assert last["reasoning_content"] == "" and frames[-1]["choices"][0]["finish_reason"] == "stop"
    result = orjson.loads(last["content"])
    assert result["type"] == "image" and "/tmp/" in result["urls"][0]
    assert len(sim.state.calls(*IMAGE_CREATE)) == 1


async def test_text_format_keeps_markdown_content(make_client: Any, sim: Sim) -> None:
    client = await make_client(generation={"progress_format": "text", "content_format": "markdown"})
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    frames = await _stream(client, chat("sora-image", "a cat", stream=True))
    _assert_text_stream(frames)
    assert _deltas(frames)[-1]["content"].startswith("![Generated Image](http://")


async def test_text_without_a_percentage_says_the_stage_and_how_long(
    make_client: Any, sim: Sim
) -> None:
    client = await make_client(
        generation={"progress_format": "text"}, upstream={"poll_interval": 0.05}
    )
    sim.state.settings.video_seconds = 30
    account = sim.state.add_account()
    await add_token(client, account)
    # A failed status poll: the job goes on, and the upstream says nothing of its progress.
    sim.state.inject("GET", PENDING, "500", email=account.email)
    frames = await _stream(client, chat("sora-video-10s", "a fox", stream=True))
    lines = _assert_text_stream(frames)
    (delayed,) = [line for line in lines if line.startswith("Status polling delayed")]
    assert re.fullmatch(
        r"Status polling delayed: upstream 500 server error; retrying in [\d.]+ s"
        r" \(generation stage, \d+ (h|min|s)( \d+ (min|s))? so far\)\n",
        delayed,
    ), delayed
    assert "%" not in delayed
    assert final_result(frames)["type"] == "video"
    assert len(sim.state.calls(*VIDEO_CREATE)) == 1
    faulted = [e.fault for e in sim.state.journal if e.path.startswith("/backend/nf/pending")]
    assert [f for f in faulted if f] == ["500"]


async def test_text_format_on_a_failure(make_client: Any, sim: Sim) -> None:
    client = await make_client(generation={"progress_format": "text", "queue_timeout": 0.2})
    resp = await client.post(
        "/v1/chat/completions", json=chat("sora-image", "a cat", stream=True), headers=KEY
    )
    frames, _ = await read_sse(resp)
    chunks = [f for f in frames if "choices" in f]
    lines = _assert_text_stream(chunks)
    assert lines[-1].startswith("Error: ") and "token" in lines[-1].lower()
    assert chunks[-1]["choices"][0]["delta"]["content"].startswith("Generation failed: ")
    # The OpenAI error frame the SDK raises on still follows.
    assert "error" in frames[-1] and frames[-1]["error"]["message"]
    assert not sim.state.calls(*IMAGE_CREATE)


# -- the per-request field ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "requested", "kind"), [("object", "text", str), ("text", "object", dict)]
)
async def test_the_request_overrides_the_config(
    make_client: Any, sim: Sim, configured: str, requested: str, kind: type
) -> None:
    client = await make_client(generation={"progress_format": configured})
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    body = chat("sora-image", "a cat", stream=True, progress_format=requested)
    deltas = _deltas(await _stream(client, body))
    assert all(isinstance(d["reasoning_content"], kind) for d in deltas[:-1])
    assert deltas[-1]["reasoning_content"] == ("" if kind is str else None)


@pytest.mark.parametrize("value", ["html", "TEXT", 1, ["text"], {"x": 1}, True])
@pytest.mark.parametrize("stream", [True, False])
async def test_an_unknown_progress_format_is_400(
    client: TestClient, sim: Sim, value: Any, stream: bool
) -> None:
    await add_token(client, sim.state.add_account())
    body = chat("sora-image", "a cat", stream=stream, progress_format=value)
    resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["param"] == "progress_format" and err["type"] == "invalid_request_error"
    assert "'progress_format' must be one of object, text" in err["message"]
    assert not sim.state.calls(*IMAGE_CREATE)  # refused before any job


async def test_non_stream_answer_has_no_progress_in_either_format(
    client: TestClient, sim: Sim
) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    body = chat("sora-image", "a cat", progress_format="text")
    resp = await client.post("/v1/chat/completions", json=body, headers=KEY)
    assert resp.status == 200
    message = (await resp.json())["choices"][0]["message"]
    assert set(message) == {"role", "content"}
    assert orjson.loads(message["content"])["type"] == "image"


async def test_the_panel_setting_switches_the_format(client: TestClient, sim: Sim) -> None:
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    session = await admin_headers(client)
    resp = await client.put(
        "/api/admin/settings",
        json={"values": {"generation.progress_format": "xml"}},
        headers=session,
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "generation.progress_format"
    resp = await client.put(
        "/api/admin/settings",
        json={"values": {"generation.progress_format": "text"}},
        headers=session,
    )
    body = await resp.json()
    assert resp.status == 200 and body["changed"] == ["generation.progress_format"]
    row = next(s for s in body["settings"] if s["key"] == "generation.progress_format")
    assert row["choices"] == ["object", "text"] and row["value"] == "text"
    frames = await _stream(client, chat("sora-image", "a cat", stream=True))
    _assert_text_stream(frames)


# -- the line format (pure) --------------------------------------------------------------------


def test_duration_words() -> None:
    assert [duration(s) for s in (0, 8, 60, 125, 3600, 3725, -3)] == [
        "0 s",
        "8 s",
        "1 min",
        "2 min 5 s",
        "1 h",
        "1 h 2 min",
        "0 s",
    ]


def test_lines_never_invent_a_percentage() -> None:
    text = ProgressText()
    start = Event("generation", "started", "Video generation started", 0.0, timestamp=1000)
    assert text.line(start) == "Video generation started\n"
    given = Event("generation", "processing", "Video generation in progress", 42.25, timestamp=1010)
    assert text.line(given) == "Video generation in progress (42.2% completed)\n"
    sora = Event("generation", "processing", "in progress: 42% completed...", 42.0, timestamp=1011)
    assert text.line(sora) == "in progress: 42% completed...\n"
    none = Event("generation", "processing", "Video generation in progress", timestamp=1065)
    assert text.line(none) == "Video generation in progress (generation stage, 1 min 5 s so far)\n"
    queued = Event("processing", "processing", "Waiting for a free token", timestamp=1070)
    assert text.line(queued) == "Waiting for a free token (processing stage, 0 s so far)\n"
    failed = Event("error", "error", "Upstream said no", timestamp=1071)
    assert text.line(failed) == "Error: Upstream said no\n"
    cached = Event("cache", "completed", "Files cached", 100.0, timestamp=1072)
    assert text.line(cached) == "Files cached\n"


# -- LiteLLM as the client ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    """LiteLLM, offline: no cost map download, no telemetry, no callbacks."""
    # Read at import: the bundled cost map instead of a download from the internet.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm as lib

    lib.telemetry = False
    lib.callbacks = []
    lib.success_callback = []
    lib.failure_callback = []
    lib.suppress_debug_info = True
    yield lib


async def _litellm_stream(lib: Any, client: TestClient, **extra: Any) -> tuple[str, str]:
    response = await lib.acompletion(
        model="openai/sora-image",
        api_base=str(client.make_url("/v1")),
        api_key=API_KEY,
        messages=[{"role": "user", "content": "a cat"}],
        stream=True,
        max_retries=0,
        **extra,
    )
    content, reasoning = [], []
    async for chunk in response:
        delta = chunk.choices[0].delta
        if delta.content:
            content.append(delta.content)
        if getattr(delta, "reasoning_content", None):
            reasoning.append(delta.reasoning_content)
    return "".join(content), "".join(reasoning)


async def test_litellm_reads_the_text_format(litellm: Any, make_client: Any, sim: Sim) -> None:
    client = await make_client(generation={"progress_format": "text"})
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    content, reasoning = await _litellm_stream(litellm, client)
    result = orjson.loads(content)
    assert result["type"] == "image" and "/tmp/" in result["urls"][0]
    assert re.search(r"^Image generation in progress: \d+% completed\.\.\.$", reasoning, re.M)
    assert reasoning.endswith("Files cached\n")
    (create,) = sim.state.calls(*IMAGE_CREATE)
    assert create.json["prompt"] == "a cat"


async def test_litellm_fails_on_the_object_format(
    litellm: Any, client: TestClient, sim: Sim
) -> None:
    """Why text mode exists: LiteLLM types reasoning_content as a string."""
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    # Its pydantic model warns on the dict first (under this suite's filterwarnings=error that
    # would be the exception); a user's default filters print it, then the TypeError.
    with (
        pytest.warns(UserWarning, match="Expected `str`.*field_name='reasoning_content'"),
        pytest.raises(TypeError, match="sequence item 0: expected str instance, dict found"),
    ):
        await _litellm_stream(litellm, client)
    assert len(sim.state.calls(*IMAGE_CREATE)) == 1
