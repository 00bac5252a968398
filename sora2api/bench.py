"""`make bench`: performance figures of sora2api against its simulator, all from one run.

The simulator (`python -m sora2api.simulator`) and the server (`python -m sora2api --config`) run
as separate processes on ephemeral 127.0.0.1 ports; the server's config.toml (in a temp dir, like
its database and media cache) points every upstream host at the simulator, poll_interval 0.5 s.
The server's memory comes from /proc/<pid>/status (VmRSS now, VmHWM peak; the peak is reset by
writing 5 to /proc/<pid>/clear_refs) and its CPU time from /proc/<pid>/stat (utime + stime, all
threads). Every figure is a ratio or a count against a target, never a wall-clock number: the
machine is shared and noisy. Children run from cached bytecode (PYTHONPYCACHEPREFIX in the temp
dir, compiled before they start), as an installed service would, even when the calling shell sets
PYTHONDONTWRITEBYTECODE. Order: 4, 1, 2, 3, 5, 6 (idle figures first). `python -m sora2api.bench
TARGET...` (`make bench BENCH="models startup"`) runs only the named targets: models (4), polls
(1), cache (2), many (3), startup (5), metrics (6).

4. GET /v1/models against a bare aiohttp app (benchmarks/bare.py, run as a script so it imports
   aiohttp and nothing else) returning the same bytes with the same content type. Not the same
   work: sora2api also runs its middlewares and checks the API key, the bare app does neither;
   that overhead is what is measured. One load generator (benchmarks/loadgen.py: raw keep-alive
   HTTP/1.1, 50 connections, no pipelining, cheap enough that the server is the bottleneck) runs
   in its own process, A/B alternating 5 times after a warm-up; best req/s of each, target
   >= 80 %. The same rounds load GET /v1/videos/{id} of a finished video (made through the
   simulator on a token that is then removed) against a second bare app returning its bytes at
   that path: what SDKs and gateways poll, target >= 70 %. Requests per server CPU-second are
   printed too, as a steadier view of the same cost. Idle RSS right after start-up (one request
   served, no tokens) must be within 1.2x of the bare app's.
1. Upstream list polls. 100 streaming video jobs on 10 tokens (10 each). Once every job has
   reported >= 30 % (below that a watcher polls at half rate), the simulator's journal is read
   over a window of 10 poll intervals and the GETs of /backend/nf/pending* in it counted. One
   watcher per token means about 10 polls per interval, not 100 (one per job). Target <= 12; the
   drafts calls made when a task leaves pending are not counted.
2. Caching a 500 MB video. A video job whose result the simulator serves as a 500 MB MP4, no
   throttling. The server's peak RSS is reset before the job is submitted; its growth over the
   whole job (cache step included) must stay under 32 MB. Cache throughput is 500 MB over the
   time between the arrival of the SSE events "cache started" and "cache completed" at the client.
   The baseline: this process copying the same simulator URL to a file in the same temp dir with
   aiohttp in 256 KiB chunks. Each file is deleted before the next transfer, so no transfer pays
   for the previous one's dirty pages. Three rounds (cache, copy), best of each; target >= 70 %.
3. 1,000 concurrent streaming image jobs on 50 tokens (image_concurrency 20), about 4 s each
   upstream, from one aiohttp session without a connection limit. All 1,000 must end with a
   result, the server's peak RSS over the phase must stay under 200 MB, and the server's CPU
   seconds per job are printed (no target; the driver's own CPU is not counted).
5. Start-up and GET /api/stats on a large database: 100,000 finished jobs and 1,000,000
   request-log rows spread over 28 days (benchmarks/bigdb.py, written through the real
   migrations, retention set to keep them all) against an empty database. A server is started on
   each 5 times, alternating; start-up is the time from spawn to the first 200 from /health
   (best of 5, target <= 1.25x the empty one), stats latency the median of 30 sequential calls
   (best of 5, target <= 3x). The counts /api/stats reports must match the rows written.
6. GET /v1/models with GET /metrics on vs off: a second server of the same build with a
   [metrics] token, scraped every second (Prometheus' default is 15 s) during its rounds, against
   the first (no token); loadgen rounds alternate between them (warm-up, then 5 each), best
   req/s of each, target >= 95 %. Requests per server CPU-second are printed too.

Exit code 0 when every target passes, 1 when any fails, 2 when the bench itself cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from .benchmarks.bigdb import build as build_big_db
from .benchmarks.proc import (
    MB,
    BenchError,
    Child,
    child_env,
    free_port,
    precompile,
    spawn,
    wait_http,
)

API_KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
POLL_INTERVAL = 0.5
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# 1: upstream polls
POLL_TOKENS = 10
POLL_JOBS = 100
POLL_WINDOW_INTERVALS = 10
POLL_TARGET = POLL_TOKENS * 1.2
# 2: caching
BIG_VIDEO = 500 * MB
CACHE_ROUNDS = 3
CACHE_RSS_LIMIT = 32 * MB
CACHE_RATIO_TARGET = 0.70
COPY_CHUNK = 256 * 1024
# 3: many jobs
MANY_TOKENS = 50
MANY_JOBS = 1000
MANY_IMAGE_CONCURRENCY = 20
MANY_RSS_LIMIT = 200 * MB
# 4: /v1/models
LOAD_CONNECTIONS = 50
LOAD_REQUESTS = 10000
LOAD_ROUNDS = 5
MODELS_RATIO_TARGET = 0.80
# 6: /v1/models with GET /metrics on (a token, scraped every second) vs off, in the same run
METRICS_TOKEN = "bench-metrics-0123456789"
METRICS_RATIO_TARGET = 0.95
METRICS_SCRAPE_INTERVAL = 1.0
POLL_RATIO_TARGET = 0.70
IDLE_RSS_TARGET = 1.2
# 5: start-up and stats on a large database
ADMIN_PASSWORD = "bench-admin-pass-0123"
BIG_JOBS = 100_000
BIG_LOGS = 1_000_000
STARTUP_ROUNDS = 5
STATS_REQUESTS = 30
STARTUP_RATIO_TARGET = 1.25
STATS_RATIO_TARGET = 3.0


@dataclass(frozen=True, slots=True)
class Figure:
    """One reported figure: what, the measured value, the target, and whether it passed."""

    label: str
    value: str
    target: str
    ok: bool | None  # None: reported only

    @property
    def verdict(self) -> str:
        return "info" if self.ok is None else ("PASS" if self.ok else "FAIL")


@dataclass(slots=True)
class StreamResult:
    """What the client saw of one streaming chat completion."""

    status: int
    done: bool = False
    content: str | None = None
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == 200 and self.done and self.content is not None and self.error is None


def _say(text: str) -> None:
    print(text, flush=True)


def _toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            # JSON strings, numbers and booleans are valid TOML values.
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


async def read_stream(
    resp: aiohttp.ClientResponse, on_event: Callable[[dict[str, Any], float], None] | None = None
) -> StreamResult:
    """Consume an SSE chat stream; on_event gets each reasoning_content with its arrival time."""
    result = StreamResult(resp.status)
    if resp.status != 200:
        result.error = (await resp.text())[:300]
        return result
    async for raw in resp.content:
        line = raw.rstrip(b"\r\n")
        if not line.startswith(b"data: "):
            continue
        payload = line[6:]
        if payload == b"[DONE]":
            result.done = True
            break
        frame = orjson.loads(payload)
        if "error" in frame:
            result.error = str(frame["error"].get("message"))
            continue
        choice = frame["choices"][0]
        delta = choice["delta"]
        reasoning = delta.get("reasoning_content")
        if reasoning and on_event is not None:
            on_event(reasoning, time.perf_counter())
        if choice.get("finish_reason"):
            result.content = delta.get("content")
    return result


class Bench:
    """The processes under test and the four measurements."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.children: list[Child] = []
        self.figures: list[Figure] = []
        self.sim_url = ""
        self.server_url = ""
        self.server: Child | None = None
        self.session: aiohttp.ClientSession | None = None
        self.accounts: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Child:
        child = spawn(name, argv, self.tmp, cwd=ROOT)
        self.children.append(child)
        return child

    async def start(self) -> None:
        await asyncio.to_thread(
            precompile,
            sys.executable,
            [
                "sora2api.__main__",
                "sora2api.app",
                "sora2api.simulator.__main__",
                "aiohttp.web",
                "json",
            ],
            self.tmp / "pycache",
            ROOT,
        )
        sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        # time-scale 1: the bench sets every duration it needs, in real seconds, per phase.
        sim = self._spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "sora2api.simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(sim_port),
                "--time-scale",
                "1",
                "--accounts",
                "0",
            ],
        )
        await wait_http(sim, self.sim_url + "/_sim/settings")
        port = free_port()
        self.server_url = f"http://127.0.0.1:{port}"
        config = {
            "server": {"host": "127.0.0.1", "port": port},
            "auth": {"api_key": API_KEY},
            "storage": {"db_path": "db.sqlite", "media_dir": "media"},
            "upstream": {
                "base_url": self.sim_url + "/backend",
                "session_url": self.sim_url + "/api/auth/session",
                "oauth_url": self.sim_url + "/oauth/token",
                "third_party_url": self.sim_url + "/thirdparty/MP4/{post_id}.mp4",
                "poll_interval": POLL_INTERVAL,
                "request_timeout": 30.0,
            },
            "generation": {"queue_timeout": 120.0},
        }
        self.config = config
        config_path = self.tmp / "config.toml"
        config_path.write_text(_toml(config))
        self.server = self._spawn(
            "sora2api", [sys.executable, "-m", "sora2api", "--config", str(config_path)]
        )
        await wait_http(self.server, self.server_url + "/health")
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    def stop(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop()

    # -- small HTTP helpers ----------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sim_url + path, json=body) as resp:
            data = await resp.read()
            if resp.status >= 300:
                raise BenchError(f"simulator {method} {path}: HTTP {resp.status}: {data[:300]!r}")
            return orjson.loads(data) if data else None

    async def add_tokens(self, count: int) -> None:
        """Add simulator accounts and register their access tokens with the server."""
        sem = asyncio.Semaphore(8)

        async def one(n: int) -> None:
            account = await self.sim(
                "POST",
                "/_sim/accounts",
                {
                    "email": f"bench{n}@sim.example",
                    "max_concurrent_videos": 10,
                    "quota": 10000,
                    "at_ttl": 30 * 86400.0,
                },
            )
            async with (
                sem,
                self.http.post(
                    self.server_url + "/api/tokens",
                    json={
                        "token": account["access_token"],
                        "image_concurrency": MANY_IMAGE_CONCURRENCY,
                        "video_concurrency": 10,
                    },
                    headers=AUTH,
                ) as resp,
            ):
                if resp.status not in (200, 201):
                    raise BenchError(
                        f"POST /api/tokens: HTTP {resp.status}: {(await resp.text())[:300]}"
                    )
            self.accounts.append(account)

        start = len(self.accounts)
        async with asyncio.timeout(120):
            await asyncio.gather(*(one(n) for n in range(start, start + count)))

    async def chat(
        self,
        session: aiohttp.ClientSession,
        model: str,
        prompt: str,
        on_event: Callable[[dict[str, Any], float], None] | None = None,
    ) -> StreamResult:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
        async with session.post(
            self.server_url + "/v1/chat/completions",
            json=body,
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
        ) as resp:
            return await read_stream(resp, on_event)

    def record(self, fig: Figure) -> None:
        self.figures.append(fig)
        _say(f"    -> {fig.label}: {fig.value}   target {fig.target}   {fig.verdict}")

    # -- 4. /v1/models, a finished video's poll, and idle RSS ------------------------------

    async def finished_video(self) -> str:
        """One video job run to completion on a token that is then removed (the later phases
        count their own tokens); returns its id."""
        await self.add_tokens(1)
        await self.sim("POST", "/_sim/settings", {"video_seconds": 1.0, "video_queue_seconds": 0.1})
        async with self.http.post(
            self.server_url + "/v1/videos",
            json={"model": "sora-2", "prompt": "bench poll"},
            headers=AUTH,
        ) as resp:
            if resp.status != 200:
                raise BenchError(f"POST /v1/videos: HTTP {resp.status}: {await resp.text()}")
            video_id = str((await resp.json())["id"])
        try:
            async with asyncio.timeout(60):
                while True:
                    async with self.http.get(
                        f"{self.server_url}/v1/videos/{video_id}", headers=AUTH
                    ) as resp:
                        status = (await resp.json())["status"]
                    if status == "completed":
                        break
                    if status == "failed":
                        raise BenchError(f"the bench video {video_id} failed")
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise BenchError(f"the bench video {video_id} did not finish within 60 s") from None
        async with self.http.get(self.server_url + "/api/tokens", headers=AUTH) as resp:
            tokens = (await resp.json())["data"]
        for token in tokens:
            async with self.http.delete(
                f"{self.server_url}/api/tokens/{token['id']}", headers=AUTH
            ) as resp:
                await resp.read()
        return video_id

    async def _bare(self, name: str, path: str, body: bytes) -> tuple[int, Child]:
        body_file = self.tmp / f"{name}.json"
        body_file.write_bytes(body)
        port = free_port()
        bare = self._spawn(
            name,
            [sys.executable, str(HERE / "benchmarks" / "bare.py"), str(port), path, str(body_file)],
        )
        url = f"http://127.0.0.1:{port}{path}"
        await wait_http(bare, url)
        async with self.http.get(url) as resp:
            if await resp.read() != body:
                raise BenchError(f"the bare app does not return the same bytes for {path}")
        return port, bare

    async def _get_body(self, path: str) -> bytes:
        async with self.http.get(self.server_url + path, headers=AUTH) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise BenchError(f"GET {path}: HTTP {resp.status}")
        return body

    async def measure_models(self) -> None:
        assert self.server is not None
        _say("[4] GET /v1/models and a finished video's GET /v1/videos/{id} against bare aiohttp")
        models = await self._get_body("/v1/models")
        bare_port, bare = await self._bare("bare", "/v1/models", models)
        await asyncio.sleep(1.0)
        server_idle, bare_idle = self.server.rss(), bare.rss()
        _say(
            f"    idle RSS: sora2api {server_idle / MB:.1f} MB, bare aiohttp {bare_idle / MB:.1f} MB"
        )
        # Measured after the idle RSS: the video needs a token, a job and a cached file.
        video_id = await self.finished_video()
        video_path = f"/v1/videos/{video_id}"
        video = await self._get_body(video_path)
        bare_video_port, bare_video = await self._bare("bare-video", video_path, video)
        _say(f"    finished video {video_id}: {len(video)} bytes, {len(models)} for /v1/models")

        sora_port = int(self.server_url.rsplit(":", 1)[1])
        auth = f"Bearer {API_KEY}"
        # name -> (port, Authorization, process, path); each pair answers the same bytes.
        targets = {
            "models": (sora_port, auth, self.server, "/v1/models"),
            "models-bare": (bare_port, "", bare, "/v1/models"),
            "video": (sora_port, auth, self.server, video_path),
            "video-bare": (bare_video_port, "", bare_video, video_path),
        }

        async def load(name: str, requests: int) -> dict[str, float]:
            port, auth, child, path = targets[name]
            cpu0 = child.cpu_seconds()
            result = await self._loadgen(port, path, auth, requests, label=name)
            result["cpu"] = child.cpu_seconds() - cpu0
            return result

        for name in targets:  # warm-up, not counted
            await load(name, 2000)
        best: dict[str, float] = {name: 0.0 for name in targets}
        # Requests per CPU-second of the server process: what it could serve on a core of its
        # own. Steadier than req/s when other work shares the two cores; reported alongside.
        per_cpu: dict[str, float] = {name: 0.0 for name in targets}
        for n in range(LOAD_ROUNDS):
            line = []
            for name in targets:
                result = await load(name, LOAD_REQUESTS)
                best[name] = max(best[name], result["rps"])
                rate = result["requests"] / max(result["cpu"], 1e-3)
                per_cpu[name] = max(per_cpu[name], rate)
                line.append(f"{name} {result['rps']:5.0f} ({rate:5.0f}/CPU-s)")
            _say(f"    run {n + 1} req/s: " + ", ".join(line))
        bare.stop()
        bare_video.stop()
        for name, label, target in (
            ("models", "GET /v1/models", MODELS_RATIO_TARGET),
            ("video", "GET /v1/videos/{id} (finished)", POLL_RATIO_TARGET),
        ):
            ratio = best[name] / best[f"{name}-bare"]
            self.record(
                Figure(
                    f"{label} req/s vs bare aiohttp",
                    f"{ratio:.0%} ({best[name]:.0f} vs {best[name + '-bare']:.0f} req/s, "
                    f"best of {LOAD_ROUNDS})",
                    f">= {target:.0%}",
                    ratio >= target,
                )
            )
            cpu_ratio = per_cpu[name] / per_cpu[f"{name}-bare"]
            self.record(
                Figure(
                    f"{label} requests per server CPU-s vs bare",
                    f"{cpu_ratio:.0%} ({per_cpu[name]:.0f} vs {per_cpu[name + '-bare']:.0f}, "
                    f"best of {LOAD_ROUNDS})",
                    "(reported)",
                    None,
                )
            )
        rss_ratio = server_idle / bare_idle
        self.record(
            Figure(
                "idle RSS vs bare aiohttp",
                f"{rss_ratio:.2f}x ({server_idle / MB:.1f} vs {bare_idle / MB:.1f} MB)",
                f"<= {IDLE_RSS_TARGET:.1f}x",
                rss_ratio <= IDLE_RSS_TARGET,
            )
        )

    # -- 1. upstream polls -----------------------------------------------------------------

    async def measure_metrics(self) -> None:
        """GET /v1/models on two servers of one build, alternating: `off` (no [metrics] token)
        and `on` (a token, and GET /metrics scraped every second during its rounds)."""
        _say("[6] GET /v1/models with /metrics on (scraped every 1 s) vs off, same run")
        port = free_port()
        config = {
            **self.config,
            "server": {"host": "127.0.0.1", "port": port},
            "storage": {"db_path": "db-metrics.sqlite", "media_dir": "media-metrics"},
            "metrics": {"token": METRICS_TOKEN},
        }
        path = self.tmp / "config-metrics.toml"
        path.write_text(_toml(config))
        on_url = f"http://127.0.0.1:{port}"
        on = self._spawn(
            "sora2api-metrics", [sys.executable, "-m", "sora2api", "--config", str(path)]
        )
        await wait_http(on, on_url + "/health")
        assert self.server is not None
        off_port = int(self.server_url.rsplit(":", 1)[1])
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        scrapes = 0

        async def scraper() -> None:
            nonlocal scrapes
            while True:
                async with self.http.get(on_url + "/metrics", headers=scrape) as resp:
                    if resp.status != 200:
                        raise BenchError(f"GET /metrics: HTTP {resp.status}")
                    await resp.read()
                scrapes += 1
                await asyncio.sleep(METRICS_SCRAPE_INTERVAL)

        async def load(port: int, child: Child, requests: int) -> tuple[float, float]:
            cpu0 = child.cpu_seconds()
            result = await self._loadgen(port, "/v1/models", f"Bearer {API_KEY}", requests)
            return result["rps"], result["requests"] / max(child.cpu_seconds() - cpu0, 1e-3)

        best = {"off": (0.0, 0.0), "on": (0.0, 0.0)}
        scraping = asyncio.create_task(scraper())
        try:
            await load(off_port, self.server, 2000)  # warm-up, not counted
            await load(port, on, 2000)
            for n in range(LOAD_ROUNDS):
                off = await load(off_port, self.server, LOAD_REQUESTS)
                onr = await load(port, on, LOAD_REQUESTS)
                best = {
                    "off": (max(best["off"][0], off[0]), max(best["off"][1], off[1])),
                    "on": (max(best["on"][0], onr[0]), max(best["on"][1], onr[1])),
                }
                _say(
                    f"    run {n + 1} req/s: off {off[0]:5.0f} ({off[1]:5.0f}/CPU-s), "
                    f"on {onr[0]:5.0f} ({onr[1]:5.0f}/CPU-s)"
                )
        finally:
            scraping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scraping
            on.stop()
        ratio = best["on"][0] / best["off"][0]
        self.record(
            Figure(
                "GET /v1/models req/s, /metrics on vs off",
                f"{ratio:.0%} ({best['on'][0]:.0f} vs {best['off'][0]:.0f} req/s, best of "
                f"{LOAD_ROUNDS}, {scrapes} scrapes)",
                f">= {METRICS_RATIO_TARGET:.0%}",
                ratio >= METRICS_RATIO_TARGET,
            )
        )
        cpu_ratio = best["on"][1] / best["off"][1]
        self.record(
            Figure(
                "GET /v1/models requests per server CPU-s, /metrics on vs off",
                f"{cpu_ratio:.0%} ({best['on'][1]:.0f} vs {best['off'][1]:.0f}, best of "
                f"{LOAD_ROUNDS})",
                "(reported)",
                None,
            )
        )

    async def _loadgen(
        self, port: int, path: str, auth: str, requests: int, *, label: str = ""
    ) -> dict[str, float]:
        """One run of benchmarks/loadgen.py in its own process against 127.0.0.1:port."""
        label = label or f"port {port}"
        argv = [
            sys.executable,
            str(HERE / "benchmarks" / "loadgen.py"),
            "127.0.0.1",
            str(port),
            path,
            str(LOAD_CONNECTIONS),
            str(requests),
        ]
        if auth:
            argv.append(auth)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(self.tmp / "pycache"),
        )
        try:
            async with asyncio.timeout(150):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise BenchError(f"load generator failed on {label}: {err.decode()[-500:]}")
        result: dict[str, float] = json.loads(out)
        if result["errors"]:
            raise BenchError(f"{label}: {result['errors']} non-200 answers to GET {path}")
        return result

    async def measure_polls(self) -> None:
        _say(f"[1] upstream list polls: {POLL_JOBS} video jobs on {POLL_TOKENS} tokens")
        await self.add_tokens(POLL_TOKENS)
        # 16 s per video: past 30 % after ~5 s, still short of 99 % at the end of the window.
        await self.sim(
            "POST", "/_sim/settings", {"video_seconds": 16.0, "video_queue_seconds": 0.5}
        )
        await self.sim("DELETE", "/_sim/journal")
        progress: dict[int, float] = {}
        all_past = asyncio.Event()

        def watch(i: int) -> Callable[[dict[str, Any], float], None]:
            def on_event(event: dict[str, Any], _: float) -> None:
                if event.get("stage") == "generation" and event.get("progress") is not None:
                    progress[i] = max(progress.get(i, 0.0), float(event["progress"]))
                    if len(progress) == POLL_JOBS and min(progress.values()) >= 30.0:
                        all_past.set()

            return on_event

        jobs = [
            asyncio.create_task(
                self.chat(self.http, "sora-video-10s", f"bench video {i}", watch(i))
            )
            for i in range(POLL_JOBS)
        ]
        try:
            try:
                async with asyncio.timeout(60):
                    await all_past.wait()
            except TimeoutError:
                raise BenchError(
                    f"only {sum(p >= 30 for p in progress.values())} of {POLL_JOBS} video jobs "
                    "reached 30 % within 60 s"
                ) from None
            t0 = time.time()
            await asyncio.sleep(POLL_WINDOW_INTERVALS * POLL_INTERVAL)
            t1 = time.time()
            highest = max(progress.values())
            journal = await self.sim("GET", "/_sim/journal?method=GET&path=/backend/nf/pending*")
            async with asyncio.timeout(90):
                results = await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            for job in jobs:
                job.cancel()
        in_window = [e for e in journal if t0 <= e["ts"] < t1]
        busy = len({e["account_email"] for e in in_window})
        per_interval = len(in_window) / ((t1 - t0) / POLL_INTERVAL)
        completed = sum(isinstance(r, StreamResult) and r.completed for r in results)
        _say(
            f"    window {t1 - t0:.2f} s = {(t1 - t0) / POLL_INTERVAL:.1f} intervals of {POLL_INTERVAL:g} s, "
            f"{len(in_window)} pending polls from {busy} accounts; highest progress at the end {highest:.0f} %; "
            f"{completed}/{POLL_JOBS} jobs completed"
        )
        _say(
            f"    pending polls per interval: {per_interval:.1f} (busy tokens {busy}, jobs {POLL_JOBS})"
        )
        self.record(
            Figure(
                "pending polls per interval",
                f"{per_interval:.1f} (busy tokens {busy}, jobs {POLL_JOBS})",
                f"<= {POLL_TARGET:g}",
                per_interval <= POLL_TARGET and busy == POLL_TOKENS and completed == POLL_JOBS,
            )
        )

    # -- 3. many concurrent jobs -----------------------------------------------------------

    async def measure_many(self) -> None:
        assert self.server is not None
        _say(f"[3] {MANY_JOBS} concurrent streaming image jobs on {MANY_TOKENS} tokens")
        await self.add_tokens(MANY_TOKENS - len(self.accounts))
        await self.sim("POST", "/_sim/settings", {"image_seconds": 4.0})
        await self.sim("DELETE", "/_sim/journal")
        await asyncio.sleep(POLL_INTERVAL * 2)  # let earlier jobs' stragglers settle
        self.server.reset_peak()
        cpu0 = self.server.cpu_seconds()
        began = time.perf_counter()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            jobs = [
                asyncio.create_task(self.chat(session, "sora-image", f"bench image {i}"))
                for i in range(MANY_JOBS)
            ]
            try:
                async with asyncio.timeout(240):
                    results = await asyncio.gather(*jobs, return_exceptions=True)
            except TimeoutError:
                raise BenchError(
                    f"{sum(j.done() for j in jobs)} of {MANY_JOBS} image jobs finished within 240 s"
                ) from None
            finally:
                for job in jobs:
                    job.cancel()
        elapsed = time.perf_counter() - began
        cpu = self.server.cpu_seconds() - cpu0
        peak = self.server.peak_rss()
        completed = sum(isinstance(r, StreamResult) and r.completed for r in results)
        failures = [r for r in results if not (isinstance(r, StreamResult) and r.completed)]
        if failures:
            sample = failures[0]
            why = (
                repr(sample)
                if isinstance(sample, BaseException)
                else f"{sample.status} {sample.error}"
            )
            _say(f"    {len(failures)} jobs did not complete; first: {why}")
        _say(
            f"    {completed}/{MANY_JOBS} completed in {elapsed:.1f} s; server CPU {cpu:.1f} s; "
            f"peak RSS {peak / MB:.1f} MB"
        )
        self.record(
            Figure(
                f"{MANY_JOBS} concurrent streaming jobs completed",
                f"{completed}",
                f"= {MANY_JOBS}",
                completed == MANY_JOBS,
            )
        )
        self.record(
            Figure(
                "server peak RSS during those jobs",
                f"{peak / MB:.1f} MB",
                f"< {MANY_RSS_LIMIT // MB} MB",
                peak < MANY_RSS_LIMIT,
            )
        )
        self.record(
            Figure(
                "server CPU seconds per job",
                f"{cpu / MANY_JOBS:.4f} s ({cpu:.1f} CPU-s / {MANY_JOBS} jobs)",
                "(reported)",
                None,
            )
        )

    # -- 2. caching a 500 MB video ---------------------------------------------------------

    async def _cache_round(self) -> tuple[float, int, str]:
        """One video job served as BIG_VIDEO bytes: (cache seconds, peak RSS growth, media URL)."""
        assert self.server is not None
        await self.sim(
            "POST",
            "/_sim/scenario",
            {
                "outcome": "success",
                "target": "video",
                "times": 1,
                "video_bytes": BIG_VIDEO,
                "seconds": 2.0,
            },
        )
        await self.sim("DELETE", "/_sim/journal")
        stamps: dict[str, float] = {}

        def on_event(event: dict[str, Any], at: float) -> None:
            if event.get("stage") == "cache":
                stamps[str(event.get("status"))] = at

        self.server.reset_peak()
        base = self.server.rss()
        async with asyncio.timeout(180):
            result = await self.chat(self.http, "sora-video-10s", "bench big video", on_event)
        growth = self.server.peak_rss() - base
        if not result.completed or "started" not in stamps or "completed" not in stamps:
            raise BenchError(f"the 500 MB video job did not complete: {result}")
        cached = [p for p in (self.tmp / "media").glob("*.mp4") if p.stat().st_size == BIG_VIDEO]
        if not cached:
            raise BenchError("no 500 MB file in the media cache after the job")
        # Gone before the copy runs: its dirty pages would otherwise slow the copy's writes.
        for path in cached:
            path.unlink()
        journal = await self.sim("GET", "/_sim/journal?method=GET&path=/media/*")
        if not journal:
            raise BenchError("the simulator saw no media download")
        entry = journal[-1]
        url = f"{self.sim_url}{entry['path']}?{urlencode(entry['query'])}"
        return stamps["completed"] - stamps["started"], growth, url

    async def _copy(self, url: str) -> float:
        """The baseline: stream the URL to a file in the same temp dir; returns seconds."""
        target = self.tmp / "baseline.mp4"
        written = 0
        began = time.perf_counter()
        async with (
            asyncio.timeout(180),
            self.http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp,
        ):
            if resp.status != 200:
                raise BenchError(f"baseline download: HTTP {resp.status}")
            with target.open("wb") as f:
                async for chunk in resp.content.iter_chunked(COPY_CHUNK):
                    written += len(chunk)
                    f.write(chunk)
        elapsed = time.perf_counter() - began
        target.unlink()
        if written != BIG_VIDEO:
            raise BenchError(f"baseline download got {written} of {BIG_VIDEO} bytes")
        return elapsed

    async def measure_cache(self) -> None:
        _say("[2] caching a 500 MB video")
        best_cache = best_copy = float("inf")
        worst_growth = 0
        for n in range(CACHE_ROUNDS):
            seconds, growth, url = await self._cache_round()
            copy = await self._copy(url)
            best_cache, best_copy = min(best_cache, seconds), min(best_copy, copy)
            worst_growth = max(worst_growth, growth)
            _say(
                f"    round {n + 1}: cache {BIG_VIDEO / MB / seconds:.0f} MB/s "
                f"(peak RSS +{growth / MB:.1f} MB), plain copy {BIG_VIDEO / MB / copy:.0f} MB/s"
            )
        cache_rate, copy_rate = BIG_VIDEO / MB / best_cache, BIG_VIDEO / MB / best_copy
        ratio = cache_rate / copy_rate
        self.record(
            Figure(
                "500 MB cache: server peak RSS growth",
                f"{worst_growth / MB:.1f} MB (worst of {CACHE_ROUNDS})",
                f"< {CACHE_RSS_LIMIT // MB} MB",
                worst_growth < CACHE_RSS_LIMIT,
            )
        )
        self.record(
            Figure(
                "500 MB cache throughput vs plain copy",
                f"{ratio:.0%} ({cache_rate:.0f} vs {copy_rate:.0f} MB/s, best of {CACHE_ROUNDS})",
                f">= {CACHE_RATIO_TARGET:.0%}",
                ratio >= CACHE_RATIO_TARGET,
            )
        )

    # -- 5. start-up and /api/stats on a large database -----------------------------------

    def _config_file(self, name: str, db: Path, port: int) -> Path:
        """A server config on `db` whose retention keeps every bench row."""
        config = {
            "server": {"host": "127.0.0.1", "port": port},
            "auth": {"api_key": API_KEY, "admin_password": ADMIN_PASSWORD},
            "storage": {
                "db_path": str(db),
                "media_dir": f"media-{name}",
                "log_max_rows": BIG_LOGS * 2,
                "job_max_rows": BIG_JOBS * 2,
            },
            "upstream": {
                "base_url": self.sim_url + "/backend",
                "session_url": self.sim_url + "/api/auth/session",
                "oauth_url": self.sim_url + "/oauth/token",
            },
        }
        path = self.tmp / f"config-{name}.toml"
        path.write_text(_toml(config))
        return path

    async def _start_once(self, name: str, config: Path, port: int) -> tuple[float, Child]:
        """Spawn a server; seconds until /health first answers 200 (polled every 5 ms)."""
        began = time.perf_counter()
        child = self._spawn(name, [sys.executable, "-m", "sora2api", "--config", str(config)])
        url = f"http://127.0.0.1:{port}/health"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            async with asyncio.timeout(60):
                while True:
                    child.check_alive()
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with session.get(url) as resp:
                            if resp.status == 200:
                                return time.perf_counter() - began, child
                    await asyncio.sleep(0.005)

    async def _stats_latency(self, port: int) -> tuple[float, dict[str, Any]]:
        """Median seconds of GET /api/stats over STATS_REQUESTS sequential calls, and its body."""
        base = f"http://127.0.0.1:{port}"
        async with self.http.post(
            base + "/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ) as resp:
            if resp.status != 200:
                raise BenchError(f"POST /api/login: HTTP {resp.status}: {await resp.text()}")
            session = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        times: list[float] = []
        body: dict[str, Any] = {}
        for _ in range(STATS_REQUESTS):
            began = time.perf_counter()
            async with self.http.get(base + "/api/stats", headers=session) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise BenchError(f"GET /api/stats: HTTP {resp.status}: {body}")
            times.append(time.perf_counter() - began)
        return statistics.median(times), body

    async def measure_startup(self) -> None:
        _say(
            f"[5] start-up and GET /api/stats: {BIG_JOBS:,} jobs + {BIG_LOGS:,} request-log rows "
            "vs an empty database"
        )
        big = self.tmp / "big.sqlite"
        began = time.perf_counter()
        await asyncio.to_thread(build_big_db, big, jobs=BIG_JOBS, logs=BIG_LOGS, now=time.time())
        _say(f"    built {big.stat().st_size / MB:.0f} MB in {time.perf_counter() - began:.0f} s")
        dbs = {"empty": self.tmp / "empty.sqlite", "large": big}
        start: dict[str, float] = {}
        stats: dict[str, float] = {}
        bodies: dict[str, dict[str, Any]] = {}
        for n in range(STARTUP_ROUNDS):
            line = []
            for name, db in dbs.items():
                port = free_port()
                config = self._config_file(name, db, port)
                seconds, child = await self._start_once(f"startup-{name}-{n}", config, port)
                start[name] = min(start.get(name, seconds), seconds)
                latency, bodies[name] = await self._stats_latency(port)
                stats[name] = min(stats.get(name, latency), latency)
                child.stop()
                line.append(f"{name} start {seconds * 1000:.0f} ms, stats {latency * 1000:.1f} ms")
            _say(f"    run {n + 1}: " + ", ".join(line))
        startup_ratio = start["large"] / start["empty"]
        self.record(
            Figure(
                "start-up, large DB vs empty",
                f"{startup_ratio:.2f}x ({start['large'] * 1000:.0f} vs "
                f"{start['empty'] * 1000:.0f} ms, best of {STARTUP_ROUNDS})",
                f"<= {STARTUP_RATIO_TARGET:.2f}x",
                startup_ratio <= STARTUP_RATIO_TARGET,
            )
        )
        stats_ratio = stats["large"] / stats["empty"]
        self.record(
            Figure(
                "GET /api/stats, large DB vs empty",
                f"{stats_ratio:.2f}x ({stats['large'] * 1000:.1f} vs "
                f"{stats['empty'] * 1000:.1f} ms, median of {STATS_REQUESTS}, best of "
                f"{STARTUP_ROUNDS})",
                f"<= {STATS_RATIO_TARGET:.1f}x",
                stats_ratio <= STATS_RATIO_TARGET,
            )
        )
        large = bodies["large"]
        counted = (
            sum(large[k]["total"] for k in ("images", "videos", "characters", "errors"))
            + large["jobs"]["cancelled"]
        )
        self.record(
            Figure(
                "jobs and request-log rows counted by /api/stats",
                f"{counted:,} jobs, {large['requests']['total']:,} requests",
                f"= {BIG_JOBS:,}, >= {BIG_LOGS:,}",
                counted == BIG_JOBS and large["requests"]["total"] >= BIG_LOGS,
            )
        )

    # -- the run ---------------------------------------------------------------------------

    def summary(self) -> bool:
        width = max(len(f.label) for f in self.figures)
        vwidth = max(len(f.value) for f in self.figures)
        twidth = max(len(f.target) for f in self.figures)
        _say("")
        _say("summary")
        _say(f"  {'figure':{width}}  {'value':{vwidth}}  {'target':{twidth}}  result")
        for f in self.figures:
            _say(f"  {f.label:{width}}  {f.value:{vwidth}}  {f.target:{twidth}}  {f.verdict}")
        failed = [f for f in self.figures if f.ok is False]
        _say(
            f"{len(self.figures) - len(failed)} of {len(self.figures)} figures pass"
            if not failed
            else f"{len(failed)} figure(s) FAIL"
        )
        return not failed


# Targets in run order (`python -m sora2api.bench startup models` runs only those two).
TARGETS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "models": Bench.measure_models,
    "polls": Bench.measure_polls,
    "cache": Bench.measure_cache,
    "many": Bench.measure_many,
    "startup": Bench.measure_startup,
    "metrics": Bench.measure_metrics,
}


async def _run(tmp: Path, targets: list[str]) -> bool:
    bench = Bench(tmp)
    try:
        await bench.start()
        _say(
            f"simulator {bench.sim_url}, sora2api {bench.server_url} (pid {bench.server.pid if bench.server else '?'}), "
            f"poll_interval {POLL_INTERVAL:g} s, temp dir {tmp}"
        )
        for name, measure in TARGETS.items():
            if name in targets:
                await measure(bench)
        return bench.summary()
    finally:
        if bench.session is not None:
            await bench.session.close()
        bench.stop()


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks that stop the children


def main(argv: list[str] | None = None) -> int:
    targets = sys.argv[1:] if argv is None else argv
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(
            f"bench: unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _on_term)
    # 1,000 client sockets here plus as many in the server: make sure the fd limit is not the test.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="sora2api-bench-"))
    began = time.monotonic()
    try:
        ok = asyncio.run(_run(tmp, targets or list(TARGETS)))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"bench took {time.monotonic() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
