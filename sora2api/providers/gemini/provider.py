"""Gemini Omni through the Interactions API, as google-genai 3.x speaks it (/v1, x-goog-api-key)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from ...upstream.errors import Kind, UpstreamFailure
from ...upstream.transport import TRANSPORT_ERRORS, read_capped, too_large, transport_failure
from ..base import Account, AccountInfo, ModelSpec, Output, Submission, TaskStatus
from . import models
from .errors import WHO, classify, interaction_failure
from .inline import InlineExtractor

API_VERSION = "v1"  # google-genai 3.x's GOOGLE_AI_API_DEFAULT_VERSION
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_RUNNING = frozenset({"in_progress", "queued", "requires_action", "requires_continuation", "idle"})
_FAILED = frozenset({"failed", "incomplete", "budget_exceeded"})
# An error body is quoted, never kept whole.
_ERROR_BODY = 64 << 10
# Answers other than a finished interaction's (models list, create, cancel) are small.
_SMALL_BODY = 4 << 20
MB = 1 << 20


class GeminiProvider:
    """Gemini Omni video: one create per job, per-task polls, inline or uri output."""

    name = "gemini"
    poll_interval = 5.0  # a 10 s clip renders in about 25 s upstream

    def __init__(
        self,
        *,
        staging_dir: Path | None = None,
        max_video_bytes: int = 2048 * MB,
        request_timeout: float = 60.0,
        read_size: int = 1 << 16,
    ) -> None:
        # Inline videos are decoded here; the media cache adopts the file (MediaCache.adopt_file).
        self.staging_dir = staging_dir
        self.max_video_bytes = max_video_bytes
        self.request_timeout = request_timeout
        self.read_size = read_size

    # -- the interface ---------------------------------------------------------------------

    def models(self, account_models: tuple[str, ...]) -> list[ModelSpec]:
        """Omni's public ids (the upstream id and its aliases) when the account serves Omni."""
        out: list[ModelSpec] = []
        for upstream in account_models:
            out += models.specs_for(upstream)
        return out

    @staticmethod
    def classify(status: int, body: bytes, endpoint: str) -> UpstreamFailure:
        """Google's error envelope as an UpstreamFailure (errors.classify)."""
        return classify(status, body, endpoint)

    def check(self, sub: Submission) -> None:
        """Refuse (BAD_REQUEST, sent=False) what submit would refuse, without sending anything."""
        models.create_body(sub)

    async def onboard(self, http: aiohttp.ClientSession, account: Account) -> AccountInfo:
        """GET /v1/models: a free, authenticated call (a create would be billed, even an empty one)."""
        data = await self._json(http, account, "GET", "/models", limit=_SMALL_BODY)
        listed = data.get("models") if isinstance(data, dict) else None
        names = [
            str(m.get("name", "")).removeprefix("models/")
            for m in (listed if isinstance(listed, list) else [])
            if isinstance(m, dict)
        ]
        return AccountInfo(models=tuple(n for n in names if n in models.VIDEO_MODELS))

    async def submit(self, http: aiohttp.ClientSession, account: Account, sub: Submission) -> str:
        """POST /v1/interactions once, in the background; the interaction id."""
        body = models.create_body(sub)
        data = await self._json(http, account, "POST", "/interactions", body=body)
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamFailure(
                Kind.MALFORMED,
                f"the create answered no interaction id: {str(data)[:120]}",
                endpoint="POST /interactions",
                upstream=WHO,
            )
        return task_id

    async def status(
        self, http: aiohttp.ClientSession, account: Account, task_id: str
    ) -> TaskStatus:
        """GET /v1/interactions/{id}?stream=false, inline video data streamed to a file."""
        path = f"/interactions/{quote(task_id, safe='')}"
        endpoint = f"GET {path}"
        staging = self.staging_dir or Path(tempfile.gettempdir())
        # Base64 is 4/3 of the video; the JSON around it is small.
        limit = self.max_video_bytes * 4 // 3 + MB
        extractor = InlineExtractor(staging, max_body=limit, endpoint=endpoint)
        try:
            async with self._request(http, account, "GET", path, query={"stream": "false"}) as resp:
                async for chunk in resp.content.iter_chunked(self.read_size):
                    extractor.feed(chunk)
            data = extractor.finish()
            result = self._read_status(data, account, extractor, endpoint)
        except BaseException:
            extractor.discard()
            raise
        kept = next((Path(o.path) for o in result.outputs if o.path), None)
        extractor.discard(keep=kept)
        return result

    async def cancel(self, http: aiohttp.ClientSession, account: Account, task_id: str) -> None:
        """POST /v1/interactions/{id}/cancel."""
        await self._json(http, account, "POST", f"/interactions/{quote(task_id, safe='')}/cancel")

    # -- reading an interaction ------------------------------------------------------------

    def _read_status(
        self, data: Any, account: Account, extractor: InlineExtractor, endpoint: str
    ) -> TaskStatus:
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise UpstreamFailure(
                Kind.MALFORMED,
                f"not an interaction: {str(data)[:120]}",
                endpoint=endpoint,
                upstream=WHO,
            )
        state = str(data["status"])
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        if state in _RUNNING:
            return TaskStatus("running", stage=state)
        if state == "cancelled":
            return TaskStatus("cancelled", stage=state, usage=usage)
        if state in _FAILED:
            failure = interaction_failure(state, data.get("errors"), endpoint)
            return TaskStatus("failed", stage=state, failure=failure, usage=usage)
        if state != "completed":
            # An unknown word: keep polling; the job's own timeout bounds the wait.
            return TaskStatus("running", stage=state)
        outputs = tuple(self._videos(data, account, extractor))
        if not outputs:
            failure = UpstreamFailure(
                Kind.MALFORMED,
                "the interaction completed without a video",
                endpoint=endpoint,
                upstream=WHO,
            )
            return TaskStatus("failed", stage=state, failure=failure, usage=usage)
        return TaskStatus("completed", progress=1.0, stage=state, outputs=outputs, usage=usage)

    def _videos(
        self, data: dict[str, Any], account: Account, extractor: InlineExtractor
    ) -> list[Output]:
        """The videos of the model_output steps (google-genai's output_video reads the same)."""
        steps = data.get("steps")
        found: list[Output] = []
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict) or step.get("type") != "model_output":
                continue
            content = step.get("content")
            for part in content if isinstance(content, list) else []:
                if not isinstance(part, dict) or part.get("type") != "video":
                    continue
                mime = str(part.get("mime_type") or "video/mp4")
                blob = extractor.blob(part.get("data"))
                if blob is not None:
                    found.append(Output(path=str(blob), content_type=mime))
                elif isinstance(part.get("uri"), str) and part["uri"]:
                    uri = part["uri"]
                    found.append(
                        Output(url=uri, headers=self._uri_headers(account, uri), content_type=mime)
                    )
        return found[:1]  # one video per interaction; extra blobs are discarded

    @staticmethod
    def _uri_headers(account: Account, uri: str) -> Mapping[str, str]:
        """The key goes only to the account's own API host (the Files API needs it there)."""
        try:
            target, base = URL(uri), URL(account.base_url or DEFAULT_BASE_URL)
        except (TypeError, ValueError):
            return {}
        same = (target.scheme, target.raw_host, target.port) == (
            base.scheme,
            base.raw_host,
            base.port,
        )
        return {"x-goog-api-key": account.key} if same else {}

    # -- transport -------------------------------------------------------------------------

    def url(self, account: Account, path: str) -> str:
        """{base_url}/v1{path}: base_url is the bare host, as google-genai takes it."""
        return f"{(account.base_url or DEFAULT_BASE_URL).rstrip('/')}/{API_VERSION}{path}"

    @contextlib.asynccontextmanager
    async def _request(
        self,
        http: aiohttp.ClientSession,
        account: Account,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One call whose 2xx response is yielded for reading; anything else is classified."""
        endpoint = f"{method} {path}"
        headers = {"x-goog-api-key": account.key, "Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        proxy = account.proxy if account.proxy and not account.proxy.startswith("socks") else None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.request_timeout, sock_read=self.request_timeout
        )
        try:
            async with http.request(
                method,
                self.url(account, path),
                params=query,
                data=data,
                headers=headers,
                proxy=proxy,
                timeout=timeout,
            ) as resp:
                if not 200 <= resp.status < 300:
                    raw = await read_capped(resp, _ERROR_BODY)
                    raise classify(resp.status, raw[:_ERROR_BODY], endpoint)
                yield resp
        except TRANSPORT_ERRORS as exc:
            # Only "never connected" leaves a create safe to send again, elsewhere.
            raise transport_failure(
                exc, endpoint=endpoint, timeout=self.request_timeout, upstream=WHO
            ) from None

    async def _json(
        self,
        http: aiohttp.ClientSession,
        account: Account,
        method: str,
        path: str,
        *,
        body: Any = None,
        limit: int = _SMALL_BODY,
    ) -> Any:
        """A call whose answer is a small JSON document."""
        endpoint = f"{method} {path}"
        # No total bound: sock_read ends a stall, and the size limit a trickle.
        async with self._request(http, account, method, path, body=body) as resp:
            raw = await read_capped(resp, limit)
        if big := too_large(raw, limit, endpoint=endpoint, upstream=WHO):
            raise big
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            preview = raw[:120].decode("utf-8", "replace") or "empty body"
            raise UpstreamFailure(
                Kind.MALFORMED,
                f"expected JSON, got {preview!r}",
                status=200,
                endpoint=endpoint,
                upstream=WHO,
            ) from None
