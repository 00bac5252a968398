"""The OpenAI Videos API over raw HTTP, end to end against the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import FormData

from sora2api import keys
from sora2api.app import create_app
from sora2api.simulator import mp4_bytes, png

from .conftest import KEY, Sim, config_for
from .helpers import add_token, chat, data_url


@pytest.fixture
async def ready(client, sim: Sim):
    """The app with one simulator account added as a token."""
    sim.state.settings.video_seconds = 30
    sim.state.settings.image_seconds = 20
    await add_token(client, sim.state.add_account())
    sim.state.clear_journal()
    return client


async def wait_video(client, video_id: str, within: float = 30) -> dict[str, Any]:
    """Poll GET /v1/videos/{id} like a client until the job is completed or failed."""
    async with asyncio.timeout(within):
        while True:
            resp = await client.get(f"/v1/videos/{video_id}", headers=KEY)
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            if body["status"] in ("completed", "failed"):
                return body
            assert body["status"] in ("queued", "in_progress")
            assert resp.headers["openai-poll-after-ms"].isdigit()
            await asyncio.sleep(0.03)


async def wait_row(client, job_id: str, check, within: float = 20) -> dict[str, Any]:
    store = client.app[keys.STORE]
    async with asyncio.timeout(within):
        while True:
            row = await store.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is not None and check(row):
                return row
            await asyncio.sleep(0.02)


def running_upstream(row: dict[str, Any]) -> bool:
    return (
        row["status"] == "in_progress"
        and bool(row["upstream_task_id"])
        and row["phase"] == "polling"
    )


def busy_total(client) -> int:
    return sum(t.busy["image"] + t.busy["video"] for t in client.app[keys.POOL].tokens())


async def create(client, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/videos", json=body, headers=KEY)
    assert resp.status == 200, await resp.text()
    return await resp.json()


VIDEO_KEYS = {
    "id",
    "task_id",
    "object",
    "model",
    "status",
    "progress",
    "created_at",
    "completed_at",
    "expires_at",
    "prompt",
    "size",
    "seconds",
    "remixed_from_video_id",
    "error",
}


async def test_json_create_poll_download(ready, sim: Sim) -> None:
    video = await create(
        ready, model="sora-2", prompt="a cat on a piano", seconds="15", size="1280x720"
    )
    assert set(video) == VIDEO_KEYS
    assert video["id"].startswith("video_") and video["task_id"] == video["id"]
    assert video["object"] == "video" and video["status"] == "queued" and video["progress"] == 0
    assert (video["model"], video["seconds"], video["size"]) == ("sora-2", "15", "1280x720")
    assert video["completed_at"] is None and video["error"] is None and video["expires_at"] is None
    done = await wait_video(ready, video["id"])
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["completed_at"] >= done["created_at"]
    assert done["expires_at"] > done["completed_at"]
    assert (done["seconds"], done["size"], done["prompt"]) == ("15", "1280x720", "a cat on a piano")
    (create_call,) = sim.state.calls("POST", "/backend/nf/create")
    assert create_call.json["orientation"] == "landscape"
    assert create_call.json["n_frames"] == 450 and create_call.json["model"] == "sy_8"
    row = await ready.app[keys.JOBS].get(video["id"])
    assert (row.api, row.model) == ("videos", "sora-2")

    resp = await ready.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert resp.status == 200 and resp.headers["Content-Type"] == "video/mp4"
    body = await resp.read()
    assert body[4:8] == b"ftyp"
    ranged = await ready.get(
        f"/v1/videos/{video['id']}/content", headers={**KEY, "Range": "bytes=4-7"}
    )
    assert ranged.status == 206 and await ranged.read() == b"ftyp"
    # the content needs the key like every /v1 route
    assert (await ready.get(f"/v1/videos/{video['id']}/content")).status == 401


@pytest.mark.parametrize(
    ("seconds", "size", "orientation", "frames", "shown"),
    [
        (10, "720x1280", "portrait", 300, "720x1280"),
        ("10", "landscape", "landscape", 300, "1280x720"),
        (
            None,
            None,
            "portrait",
            300,
            "720x1280",
        ),  # OpenAI's default size; the shortest clip there is
        ("15", "Portrait", "portrait", 450, "720x1280"),
    ],
)
async def test_seconds_and_size_mapping(
    ready, sim: Sim, seconds, size, orientation, frames, shown
) -> None:
    body: dict[str, Any] = {"prompt": "waves"}
    if seconds is not None:
        body["seconds"] = seconds
    if size is not None:
        body["size"] = size
    video = await create(ready, **body)
    assert (video["seconds"], video["size"], video["model"]) == (str(frames // 30), shown, "sora-2")
    await wait_video(ready, video["id"])
    (call,) = sim.state.calls("POST", "/backend/nf/create")
    assert (call.json["orientation"], call.json["n_frames"]) == (orientation, frames)


async def test_seed_model_ids_and_pro_alias(ready, sim: Sim) -> None:
    seed = await create(ready, model="sora-video-portrait-15s", prompt="x")
    assert (seed["model"], seed["seconds"], seed["size"]) == (
        "sora-video-portrait-15s",
        "15",
        "720x1280",
    )
    pro = await create(ready, model="sora-2-pro", prompt="y", seconds="10", size="1280x720")
    assert pro["model"] == "sora-2-pro"
    await wait_video(ready, seed["id"])
    await wait_video(ready, pro["id"])
    calls = {c.json["prompt"]: c.json for c in sim.state.calls("POST", "/backend/nf/create")}
    assert (calls["x"]["orientation"], calls["x"]["n_frames"]) == ("portrait", 450)
    # sora-2-pro is not routed to Pro accounts: same backend model, documented
    assert calls["y"]["model"] == "sy_8" and calls["y"]["n_frames"] == 300


async def test_multipart_with_input_reference_file(ready, sim: Sim) -> None:
    form = FormData()
    form.add_field("prompt", "make it move")
    form.add_field("model", "sora-2")
    form.add_field("seconds", "10")
    form.add_field("size", "720x1280")
    form.add_field(
        "input_reference", png((1, 2, 3)), filename="start.png", content_type="image/png"
    )
    resp = await ready.post("/v1/videos", data=form, headers=KEY)
    assert resp.status == 200, await resp.text()
    video = await resp.json()
    assert (video["seconds"], video["size"]) == ("10", "720x1280")
    assert (await wait_video(ready, video["id"]))["status"] == "completed"
    (upload,) = sim.state.calls("POST", "/backend/uploads")
    assert upload.form["file"]["content_type"] == "image/png"
    (call,) = sim.state.calls("POST", "/backend/nf/create")
    assert call.json["inpaint_items"][0]["kind"] == "upload"
    assert call.json["orientation"] == "portrait"


@pytest.mark.parametrize("how", ["object", "string"])
async def test_json_input_reference_data_url(ready, sim: Sim, how: str) -> None:
    url = data_url(png((4, 5, 6)), "image/png")
    ref: Any = {"image_url": url} if how == "object" else url
    video = await create(ready, prompt="animate", input_reference=ref, seconds="10")
    await wait_video(ready, video["id"])
    assert len(sim.state.calls("POST", "/backend/uploads")) == 1
    (call,) = sim.state.calls("POST", "/backend/nf/create")
    assert call.json["inpaint_items"][0]["upload_id"].startswith("media_")


async def test_multipart_input_reference_object_fields(ready, sim: Sim) -> None:
    # The SDKs' form encoding of {"image_url": ...}: a field named input_reference[image_url].
    form = FormData()
    form.add_field("prompt", "animate")
    form.add_field("input_reference[image_url]", data_url(png((2, 2, 2)), "image/png"))
    resp = await ready.post("/v1/videos", data=form, headers=KEY)
    assert resp.status == 200, await resp.text()
    await wait_video(ready, (await resp.json())["id"])
    assert len(sim.state.calls("POST", "/backend/uploads")) == 1


async def _bad(client, data: Any = None, json: Any = None) -> dict[str, Any]:
    resp = await client.post("/v1/videos", data=data, json=json, headers=KEY)
    body = await resp.json()
    assert resp.status == 400, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (
            {"model": "sora-3", "prompt": "x"},
            "model",
            "Unknown model 'sora-3'; available: sora-2, sora-2-pro",
        ),
        ({"model": "sora-image", "prompt": "x"}, "model", "/v1/images/generations"),
        ({"prompt": "x", "seconds": "4"}, "seconds", 'use one of "10", "15"'),
        ({"prompt": "x", "seconds": 8}, "seconds", 'use one of "10", "15"'),
        ({"prompt": "x", "seconds": "12"}, "seconds", '"4", "8" and "12" are not available'),
        ({"prompt": "x", "seconds": "25"}, "seconds", "Pro account"),
        ({"prompt": "x", "size": "1792x1024"}, "size", "1280x720 (landscape), 720x1280 (portrait)"),
        ({"prompt": "x", "size": 720}, "size", "Unsupported size"),
        (
            {"model": "sora-video-portrait-10s", "prompt": "x", "seconds": "15"},
            "seconds",
            "makes 10 s videos",
        ),
        (
            {"model": "sora-video-portrait-10s", "prompt": "x", "size": "1280x720"},
            "size",
            "makes portrait videos",
        ),
        ({"seconds": "10"}, "prompt", "'prompt' is required"),
        ({"prompt": "   "}, "prompt", "'prompt' is required"),
        (
            {
                "prompt": "x",
                "input_reference": {"image_url": data_url(b"hello world", "image/png")},
            },
            "input_reference",
            "not a PNG, JPEG, GIF or WebP image",
        ),
        (
            {"prompt": "x", "input_reference": {"file_id": "file_123"}},
            "input_reference",
            "file ids",
        ),
        ({"prompt": "x", "style_id": "glitter"}, "style_id", "Unknown style"),
        ({"prompt": "[3s] too short"}, "prompt", "each shot must last"),
        ({"prompt": "x", "characters": ["char_" + "0" * 32]}, "characters", "No character"),
    ],
)
async def test_bad_input_json(
    ready, sim: Sim, body: dict[str, Any], param: str, fragment: str
) -> None:
    err = await _bad(ready, json=body)
    assert err["param"] == param
    assert fragment in err["message"]
    assert not sim.state.calls("POST", "/backend/*")  # nothing reached Sora
    assert await ready.app[keys.STORE].fetchone("SELECT id FROM jobs") is None


async def test_bad_input_multipart_file_is_not_an_image(ready, sim: Sim) -> None:
    form = FormData()
    form.add_field("prompt", "x")
    form.add_field(
        "input_reference", b"%PDF-1.4 not an image", filename="doc.png", content_type="image/png"
    )
    err = await _bad(ready, data=form)
    assert err["param"] == "input_reference" and "uploaded file is not a PNG" in err["message"]
    err = await _bad(ready, json=[1, 2])
    assert "JSON object" in err["message"]
    resp = await ready.post(
        "/v1/videos",
        data=b"garbage",
        headers={**KEY, "Content-Type": "multipart/form-data; boundary=zz"},
    )
    assert resp.status == 400 and "could not be parsed" in (await resp.json())["error"]["message"]


async def test_bad_input_multipart_part_with_unknown_charset_is_400(ready, sim: Sim) -> None:
    body = (
        b'--zz\r\nContent-Disposition: form-data; name="prompt"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\na cat\r\n--zz--\r\n"
    )
    resp = await ready.post(
        "/v1/videos", data=body, headers={**KEY, "Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert resp.status == 400, await resp.text()
    assert "could not be parsed" in (await resp.json())["error"]["message"]
    assert await ready.app[keys.STORE].fetchone("SELECT id FROM jobs") is None


async def test_unfinished_and_failed_content_are_clear_errors(ready, sim: Sim) -> None:
    sim.state.settings.video_seconds = 3000
    video = await create(ready, prompt="slow")
    resp = await ready.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    body = await resp.json()
    assert resp.status == 409, body
    assert body["error"]["code"] == "video_not_ready"
    assert "not finished" in body["error"]["message"] and video["id"] in body["error"]["message"]
    await ready.delete(f"/v1/videos/{video['id']}", headers=KEY)

    sim.state.settings.video_seconds = 30
    sim.state.scenario("fail", target="video", message="upstream exploded")
    failed = await wait_video(ready, (await create(ready, prompt="doomed"))["id"])
    assert failed["status"] == "failed" and failed["progress"] < 100
    assert failed["error"]["code"] and "upstream exploded" in failed["error"]["message"]
    resp = await ready.get(f"/v1/videos/{failed['id']}/content", headers=KEY)
    body = await resp.json()
    assert resp.status == 409 and "upstream exploded" in body["error"]["message"]


async def test_content_variants_and_expiry(ready, sim: Sim) -> None:
    video = await wait_video(ready, (await create(ready, prompt="a fox"))["id"])
    thumb = await ready.get(
        f"/v1/videos/{video['id']}/content", params={"variant": "thumbnail"}, headers=KEY
    )
    assert thumb.status == 200 and (await thumb.read()).startswith(b"\x89PNG")
    sprite = await ready.get(
        f"/v1/videos/{video['id']}/content", params={"variant": "spritesheet"}, headers=KEY
    )
    assert sprite.status == 404
    assert "no spritesheet" in (await sprite.json())["error"]["message"]
    odd = await ready.get(
        f"/v1/videos/{video['id']}/content", params={"variant": "gif"}, headers=KEY
    )
    assert odd.status == 400
    # the cached file is gone (pruned after media_ttl): a clear 410, not an empty body
    row = await ready.app[keys.JOBS].get(video["id"])
    ready.app[keys.MEDIA].delete(orjson.loads(row.state)["files"][0])
    gone = await ready.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert gone.status == 410 and "expired" in (await gone.json())["error"]["message"]
    missing = await ready.get("/v1/videos/video_" + "f" * 32 + "/content", headers=KEY)
    assert missing.status == 404


async def test_cancelled_job_reads_as_failed_with_code(ready, sim: Sim) -> None:
    sim.state.settings.video_seconds = 3000
    video = await create(ready, prompt="never mind")
    await wait_row(ready, video["id"], running_upstream)
    assert await ready.app[keys.JOBS].cancel(video["id"])
    body = await (await ready.get(f"/v1/videos/{video['id']}", headers=KEY)).json()
    assert body["status"] == "failed" and body["error"]["code"] == "cancelled"


async def test_list_pagination(ready, sim: Sim) -> None:
    ids = [(await create(ready, prompt=f"clip {i}"))["id"] for i in range(3)]
    # a chat-created video is the same kind of job and is listed too
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-video-10s", "from chat"), headers=KEY
    )
    ids.append((await resp.json())["job_id"])
    # image jobs are not videos
    await ready.post("/v1/chat/completions", json=chat("sora-image", "an image"), headers=KEY)
    page = await (await ready.get("/v1/videos", params={"limit": "2"}, headers=KEY)).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [v["id"] for v in page["data"]] == ids[::-1][:2]
    assert (page["first_id"], page["last_id"]) == (ids[3], ids[2])
    rest = await (
        await ready.get("/v1/videos", params={"after": page["last_id"]}, headers=KEY)
    ).json()
    assert [v["id"] for v in rest["data"]] == ids[1::-1] and rest["has_more"] is False
    asc = await (
        await ready.get("/v1/videos", params={"order": "asc", "limit": "100"}, headers=KEY)
    ).json()
    assert [v["id"] for v in asc["data"]] == ids
    bad = await ready.get("/v1/videos", params={"after": "video_nope"}, headers=KEY)
    assert bad.status == 400 and (await bad.json())["error"]["param"] == "after"
    assert (await ready.get("/v1/videos", params={"order": "up"}, headers=KEY)).status == 400
    assert (await ready.get("/v1/videos", params={"limit": "0"}, headers=KEY)).status == 400


async def test_delete_running_job_stops_it_and_frees_the_token(ready, sim: Sim) -> None:
    sim.state.settings.video_seconds = 3000
    video = await create(ready, prompt="long one")
    await wait_row(ready, video["id"], running_upstream)
    assert busy_total(ready) == 1
    resp = await ready.delete(f"/v1/videos/{video['id']}", headers=KEY)
    assert resp.status == 200
    assert await resp.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
    assert busy_total(ready) == 0
    run = ready.app[keys.JOBS].run_of(video["id"])
    assert run is None
    assert (await ready.get(f"/v1/videos/{video['id']}", headers=KEY)).status == 404
    # the watcher stopped polling for it: no more pending polls once it settles
    await asyncio.sleep(0.2)
    polls = len(sim.state.calls("GET", "/backend/nf/pending*"))
    await asyncio.sleep(0.3)
    assert len(sim.state.calls("GET", "/backend/nf/pending*")) == polls


async def test_delete_finished_job_removes_its_media(ready, sim: Sim) -> None:
    video = await wait_video(ready, (await create(ready, prompt="keep?"))["id"])
    row = await ready.app[keys.JOBS].get(video["id"])
    state = orjson.loads(row.state)
    media = ready.app[keys.MEDIA]
    assert (
        media.resolve(state["files"][0]) is not None
        and media.resolve(state["thumbnail"]) is not None
    )
    resp = await ready.delete(f"/v1/videos/{video['id']}", headers=KEY)
    assert (await resp.json())["deleted"] is True
    assert media.resolve(state["files"][0]) is None and media.resolve(state["thumbnail"]) is None
    assert (await ready.delete(f"/v1/videos/{video['id']}", headers=KEY)).status == 404


async def test_remix_publishes_once_and_remixes_the_post(ready, sim: Sim) -> None:
    source = await wait_video(
        ready, (await create(ready, prompt="a dog", seconds="15", size="landscape"))["id"]
    )
    unfinished_check = await ready.post(f"/v1/videos/{source['id']}/remix", json={}, headers=KEY)
    assert unfinished_check.status == 400  # no prompt: rejected before anything is published
    assert not sim.state.calls("POST", "/backend/project_y/post")

    resp = await ready.post(
        f"/v1/videos/{source['id']}/remix", json={"prompt": "make it ink style"}, headers=KEY
    )
    assert resp.status == 200, await resp.text()
    remix = await resp.json()
    assert remix["remixed_from_video_id"] == source["id"] and remix["id"] != source["id"]
    assert (remix["seconds"], remix["size"], remix["model"]) == ("15", "1280x720", "sora-2")
    assert (await wait_video(ready, remix["id"]))["status"] == "completed"

    (post,) = sim.state.calls("POST", "/backend/project_y/post")
    generation_id = post.json["attachments_to_create"][0]["generation_id"]
    assert generation_id.startswith("gen_")
    creates = sim.state.calls("POST", "/backend/nf/create")
    assert len(creates) == 2
    target = creates[1].json["remix_target_id"]
    assert target.startswith("s_") and len(target) == 34
    assert (
        creates[1].json["prompt"],
        creates[1].json["orientation"],
        creates[1].json["n_frames"],
    ) == ("make it ink style", "landscape", 450)

    # a second remix reuses the post; deleting the source takes the post down
    again = await ready.post(
        f"/v1/videos/{source['id']}/remix", json={"prompt": "now in color"}, headers=KEY
    )
    await wait_video(ready, (await again.json())["id"])
    assert len(sim.state.calls("POST", "/backend/project_y/post")) == 1
    assert sim.state.calls("POST", "/backend/nf/create")[2].json["remix_target_id"] == target
    await ready.delete(f"/v1/videos/{source['id']}", headers=KEY)
    (delete,) = sim.state.calls("DELETE", "/backend/project_y/post/*")
    assert delete.path.endswith(target)


async def test_remix_of_unfinished_or_unknown_video(ready, sim: Sim) -> None:
    sim.state.settings.video_seconds = 3000
    video = await create(ready, prompt="slow")
    resp = await ready.post(f"/v1/videos/{video['id']}/remix", json={"prompt": "x"}, headers=KEY)
    assert (
        resp.status == 409 and "only a completed video" in (await resp.json())["error"]["message"]
    )
    resp = await ready.post(
        "/v1/videos/video_" + "a" * 32 + "/remix", json={"prompt": "x"}, headers=KEY
    )
    assert resp.status == 404
    assert not sim.state.calls("POST", "/backend/project_y/post")


async def test_remix_publish_failure_is_named(ready, sim: Sim) -> None:
    source = await wait_video(ready, (await create(ready, prompt="a dog"))["id"])
    sim.state.inject("POST", "/backend/project_y/post", "500")
    resp = await ready.post(f"/v1/videos/{source['id']}/remix", json={"prompt": "x"}, headers=KEY)
    body = await resp.json()
    assert resp.status == 502 and "Publishing" in body["error"]["message"]
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1  # no remix was started


async def test_seed_extras_style_storyboard_remix_id(ready, sim: Sim) -> None:
    styled = await create(ready, prompt="a cat {anime}", seconds="10")
    board = await create(
        ready, prompt="Cat adventure [5.0s]jumps [10s]lands", seconds="15", style_id="retro"
    )
    remix = await create(
        ready, prompt="https://sora.chatgpt.com/p/s_68e3a06dcd888191b150971da152c1f5 ink style"
    )
    for v in (styled, board, remix):
        assert (await wait_video(ready, v["id"]))["status"] == "completed"
    by_prompt = {c.json["prompt"]: c.json for c in sim.state.calls("POST", "/backend/nf/create")}
    assert by_prompt["a cat"]["style_id"] == "anime"
    assert by_prompt["ink style"]["remix_target_id"] == "s_68e3a06dcd888191b150971da152c1f5"
    (story,) = sim.state.calls("POST", "/backend/nf/create/storyboard")
    assert story.json["prompt"].startswith(
        "current timeline:\nShot 1:\nduration: 5.0sec\nScene: jumps"
    )
    assert story.json["style_id"] == "retro" and story.json["n_frames"] == 450


async def test_characters_create_get_and_use(ready, sim: Sim) -> None:
    sim.state.settings.cameo_seconds = 20
    form = FormData()
    form.add_field("name", "Kitty")
    form.add_field("video", mp4_bytes(), filename="kitty.mp4", content_type="video/mp4")
    resp = await ready.post("/v1/videos/characters", data=form, headers=KEY)
    assert resp.status == 200, await resp.text()
    char = await resp.json()
    assert char["id"].startswith("char_") and char["name"] == "Kitty"
    assert char["status"] in ("queued", "in_progress") and isinstance(char["created_at"], int)
    async with asyncio.timeout(20):
        while char["status"] not in ("completed", "failed"):
            await asyncio.sleep(0.05)
            char = await (
                await ready.get(f"/v1/videos/characters/{char['id']}", headers=KEY)
            ).json()
    assert char["status"] == "completed", char
    assert char["display_name"] == "Kitty" and char["username"]
    assert char["cameo_id"] and char["character_id"]
    (fin,) = sim.state.calls("POST", "/backend/characters/finalize")
    assert fin.json["display_name"] == "Kitty" and fin.json["username"] == char["username"]
    # not a video: the videos routes point to the right place
    wrong = await ready.get(f"/v1/videos/{char['id']}", headers=KEY)
    assert (
        wrong.status == 404 and "/v1/videos/characters/" in (await wrong.json())["error"]["message"]
    )

    video = await create(ready, prompt="dancing in the rain", characters=[char["id"]])
    await wait_video(ready, video["id"])
    (call,) = sim.state.calls("POST", "/backend/nf/create")
    assert call.json["prompt"] == f"@{char['username']} dancing in the rain"


async def test_character_bad_input(ready, sim: Sim) -> None:
    resp = await ready.post(
        "/v1/videos/characters", json={"video_url": data_url(mp4_bytes(), "video/mp4")}, headers=KEY
    )
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "name"
    resp = await ready.post(
        "/v1/videos/characters",
        json={"name": "A", "video_url": data_url(png((1, 1, 1)), "video/mp4")},
        headers=KEY,
    )
    assert resp.status == 400 and "not a MP4" in (await resp.json())["error"]["message"]
    resp = await ready.post("/v1/videos/characters", json={"name": "A"}, headers=KEY)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "video"
    assert (await ready.get("/v1/videos/characters/char_" + "0" * 32, headers=KEY)).status == 404


async def test_unsupported_video_endpoints_say_why(ready) -> None:
    resp = await ready.post("/v1/videos/edits", json={"prompt": "x"}, headers=KEY)
    assert resp.status == 400 and "remix" in (await resp.json())["error"]["message"]


async def test_chat_job_whose_stream_broke_is_picked_up_by_id(ready, sim: Sim) -> None:
    """A client loses its stream after the first chunk, then fetches the result instead of paying
    for a second generation."""
    sim.state.settings.video_seconds = 200
    resp = await ready.post(
        "/v1/chat/completions", json=chat("sora-video-portrait-15s", "x", stream=True), headers=KEY
    )
    first = await resp.content.readline()
    chunk = orjson.loads(first[6:])
    job_id = chunk["job_id"]
    assert chunk["id"] == f"chatcmpl-{job_id}"
    resp.close()
    video = await wait_video(ready, job_id)
    assert video["status"] == "completed"
    assert (video["model"], video["seconds"], video["size"]) == (
        "sora-video-portrait-15s",
        "15",
        "720x1280",
    )
    content = await ready.get(f"/v1/videos/{job_id}/content", headers=KEY)
    assert content.status == 200 and (await content.read())[4:8] == b"ftyp"
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1


async def test_new_api_style_gateway(ready, sim: Sim) -> None:
    """What new-api's Sora channel does: create, poll reading id/task_id, status (any case) and
    progress, then fetch /content with the channel's key, following redirects, reading bytes."""
    base = str(ready.make_url("")).rstrip("/")
    headers = {"Authorization": KEY["Authorization"]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/v1/videos",
            json={"model": "sora-2", "prompt": "a cat", "seconds": "10", "size": "1280x720"},
            headers=headers,
        ) as resp:
            assert resp.status == 200
            created = await resp.json(content_type=None)
        task_id = created.get("id") or created.get("task_id")
        seen: list[int] = []
        async with asyncio.timeout(30):
            while True:
                async with http.get(f"{base}/v1/videos/{task_id}", headers=headers) as resp:
                    info = await resp.json(content_type=None)
                assert (info.get("id") or info.get("task_id")) == task_id
                status = str(info["status"]).lower()
                seen.append(int(info.get("progress") or 0))
                if status in ("completed", "succeeded", "success"):
                    break
                assert status in ("queued", "pending", "in_progress", "processing"), status
                await asyncio.sleep(0.03)
        assert seen == sorted(seen) and seen[-1] == 100
        async with http.get(
            f"{base}/v1/videos/{task_id}/content", headers=headers, allow_redirects=True
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "video/mp4"
            data = await resp.read()
    assert data[4:8] == b"ftyp"


async def test_job_created_via_videos_survives_restart(
    sim: Sim, tmp_path: Path, aiohttp_client
) -> None:
    sim.state.settings.video_seconds = 300
    config = config_for(sim, tmp_path)
    client = await aiohttp_client(create_app(config))
    await add_token(client, sim.state.add_account())
    video = await create(client, prompt="survive", seconds="15", size="720x1280")
    await wait_row(client, video["id"], running_upstream)
    await client.close()  # the process goes away mid-job; the row stays in_progress

    client2 = await aiohttp_client(create_app(config))
    done = await wait_video(client2, video["id"], within=60)
    assert done["status"] == "completed", done
    assert (done["seconds"], done["size"], done["model"]) == ("15", "720x1280", "sora-2")
    assert len(sim.state.calls("POST", "/backend/nf/create")) == 1
    content = await client2.get(f"/v1/videos/{video['id']}/content", headers=KEY)
    assert (await content.read())[4:8] == b"ftyp"


async def test_images_are_not_videos(ready, sim: Sim) -> None:
    resp = await ready.post("/v1/chat/completions", json=chat("sora-image", "x"), headers=KEY)
    job_id = (await resp.json())["job_id"]
    wrong = await ready.get(f"/v1/videos/{job_id}", headers=KEY)
    assert (
        wrong.status == 404 and f"/v1/images/{job_id}" in (await wrong.json())["error"]["message"]
    )


async def test_list_cursor_must_be_a_video(ready, sim: Sim) -> None:
    resp = await ready.post("/v1/images/generations", json={"prompt": "a cat"}, headers=KEY)
    image_id = (await resp.json())["job_id"]
    for after in (image_id, "video_" + "0" * 32):
        resp = await ready.get("/v1/videos", params={"after": after}, headers=KEY)
        err = (await resp.json())["error"]
        assert resp.status == 400 and err["param"] == "after", (after, err)
        assert after in err["message"]
