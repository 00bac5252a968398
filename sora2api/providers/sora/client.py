"""The Sora backend client: one method per endpoint. It knows nothing about OpenAI shapes."""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from ...settings import Settings
from ...upstream.errors import Kind, UpstreamFailure, classify
from ...upstream.transport import TRANSPORT_ERRORS, read_capped, too_large, transport_failure

log = logging.getLogger(__name__)

_ALNUM = string.ascii_letters + string.digits
# Largest JSON answer read from the backend (feeds and task lists are a few hundred KB at most).
_MAX_RESPONSE = 16 << 20


def _object(data: Any, endpoint: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UpstreamFailure(
            Kind.MALFORMED, f"expected a JSON object, got {type(data).__name__}", endpoint=endpoint
        )
    return data


def _objects(data: Any, key: str | None, endpoint: str) -> list[dict[str, Any]]:
    """The objects of a task list: `data[key]`, or `data` itself when key is None."""
    items = data if key is None else (data.get(key) if isinstance(data, dict) else None)
    if not isinstance(items, list):
        where = "the answer" if key is None else f"{key!r}"
        raise UpstreamFailure(Kind.MALFORMED, f"{where} is not a list", endpoint=endpoint)
    return [item for item in items if isinstance(item, dict)]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a task list, and the cursor of the next one (None on the last page)."""

    items: list[dict[str, Any]]
    cursor: str | None


def _next_cursor(data: Any) -> str | None:
    cursor = data.get("cursor") if isinstance(data, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


def sentinel_token() -> str:
    """The seed-mode sentinel: an opaque random string on the four create/publish calls."""
    return "".join(secrets.choice(_ALNUM) for _ in range(secrets.randbelow(11) + 10))


@dataclass(frozen=True, slots=True)
class Part:
    """One multipart form part."""

    name: str
    value: bytes | str
    filename: str | None = None
    content_type: str | None = None


class SoraClient:
    """Talks to the hosts of [upstream]; every URL is derived from the live settings."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._socks: dict[str, aiohttp.ClientSession] = {}

    async def close(self) -> None:
        for s in self._socks.values():
            await s.close()
        self._socks.clear()

    # -- transport -----------------------------------------------------------------------

    def _route(self, proxy: str | None) -> tuple[aiohttp.ClientSession, str | None]:
        """The session and `proxy=` argument for a call: per-token proxy, else the global one."""
        proxy = proxy or self._settings.current.upstream.proxy or None
        if not proxy:
            return self._session, None
        if proxy.startswith(("socks4://", "socks5://", "socks5h://")):
            session = self._socks.get(proxy)
            if session is None or session.closed:
                from aiohttp_socks import ProxyConnector  # imported only when a SOCKS proxy is used

                session = aiohttp.ClientSession(
                    connector=ProxyConnector.from_url(proxy),
                    timeout=self._session.timeout,
                    # The main session's observers (GET /metrics times upstream calls) apply too.
                    trace_configs=list(self._session.trace_configs),
                )
                self._socks[proxy] = session
            return session, None
        return self._session, proxy

    def _headers(self, token: str | None, *, sentinel: bool = False) -> dict[str, str]:
        cfg = self._settings.current.upstream
        headers = {
            "User-Agent": cfg.user_agent,
            "Accept": "application/json",
            "Origin": "https://sora.chatgpt.com",
            "Referer": "https://sora.chatgpt.com/",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if sentinel:
            headers["openai-sentinel-token"] = sentinel_token()
        return headers

    def url(self, path: str) -> str:
        return self._settings.current.upstream.base_url.rstrip("/") + path

    async def request(
        self,
        method: str,
        url: str,
        token: str | None,
        *,
        json: Any = None,
        parts: list[Part] | None = None,
        sentinel: bool = False,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = True,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        """One backend call: success is a status in `ok` with a JSON body; else UpstreamFailure."""
        endpoint = f"{method} {url.split('?', 1)[0].removeprefix(self._settings.current.upstream.base_url)}"
        hdrs = self._headers(token, sentinel=sentinel)
        if headers:
            hdrs.update(headers)
        data: Any = None
        body: bytes | None = None
        if parts is not None:
            form = aiohttp.FormData()
            for p in parts:
                form.add_field(p.name, p.value, filename=p.filename, content_type=p.content_type)
            data = form
        elif json is not None:
            body = orjson.dumps(json)
            hdrs["Content-Type"] = "application/json"
        session, proxy_arg = self._route(proxy)
        timeout = self._settings.current.upstream.request_timeout
        try:
            async with asyncio.timeout(timeout):
                async with session.request(
                    method,
                    url,
                    data=data if data is not None else body,
                    headers=hdrs,
                    proxy=proxy_arg,
                ) as resp:
                    # Capped: a broken or hostile upstream must not fill our memory.
                    raw = await read_capped(resp, _MAX_RESPONSE)
                    status = resp.status
                    ctype = resp.headers.get("Content-Type", "")
                    retry_after = resp.headers.get("Retry-After")
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, endpoint=endpoint, timeout=timeout) from None
        if big := too_large(raw, _MAX_RESPONSE, status=status, endpoint=endpoint):
            raise big
        if status not in ok:
            failure = classify(status, raw, ctype, endpoint)
            if retry_after and retry_after.isdigit():
                failure.retry_after = float(retry_after)
            raise failure
        if not expect_json:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            preview = raw[:120].decode("utf-8", "replace") or "empty body"
            raise UpstreamFailure(
                Kind.MALFORMED, f"expected JSON, got {preview!r}", status=status, endpoint=endpoint
            ) from None

    async def _get(self, path: str, token: str, proxy: str | None = None, **query: Any) -> Any:
        q = {k: v for k, v in query.items() if v is not None and v != ""}
        url = self.url(path) + ("?" + urlencode(q) if q else "")
        return await self.request("GET", url, token, proxy=proxy)

    async def _post(
        self, path: str, token: str, body: Any, proxy: str | None = None, **kw: Any
    ) -> Any:
        return await self.request("POST", self.url(path), token, json=body, proxy=proxy, **kw)

    async def _delete(self, path: str, token: str, proxy: str | None) -> None:
        """A DELETE: 200 or 204 is success, and no body is expected."""
        await self.request(
            "DELETE", self.url(path), token, proxy=proxy, expect_json=False, ok=(200, 204)
        )

    @staticmethod
    def _field(data: Any, key: str, endpoint: str) -> Any:
        if not isinstance(data, dict) or not data.get(key):
            raise UpstreamFailure(
                Kind.MALFORMED, f"response has no {key!r}: {str(data)[:120]}", endpoint=endpoint
            )
        return data[key]

    # -- auth hosts ----------------------------------------------------------------------

    async def st_to_at(self, st: str, proxy: str | None = None) -> dict[str, Any]:
        """Session token → {accessToken, expires, user.email}."""
        data = await self.request(
            "GET",
            self._settings.current.upstream.session_url,
            None,
            headers={"Cookie": f"__Secure-next-auth.session-token={st}"},
            proxy=proxy,
        )
        if not isinstance(data, dict) or not data.get("accessToken"):
            raise UpstreamFailure(
                Kind.TOKEN_EXPIRED,
                "the session token gave no access token (expired or signed out)",
                endpoint="GET session",
            )
        return data

    async def rt_to_at(
        self, rt: str, client_id: str | None = None, proxy: str | None = None
    ) -> dict[str, Any]:
        """Refresh token → {access_token, refresh_token (rotated), expires_in}."""
        body = {
            "client_id": client_id or self._settings.current.upstream.client_id,
            "grant_type": "refresh_token",
            "redirect_uri": "com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback",
            "refresh_token": rt,
        }
        data = await self.request(
            "POST", self._settings.current.upstream.oauth_url, None, json=body, proxy=proxy
        )
        if not isinstance(data, dict) or not data.get("access_token"):
            raise UpstreamFailure(
                Kind.TOKEN_EXPIRED,
                "the refresh token gave no access token",
                endpoint="POST oauth/token",
            )
        return data

    async def _get_object(self, path: str, token: str, proxy: str | None) -> dict[str, Any]:
        """A GET whose answer must be a JSON object (MALFORMED otherwise)."""
        return _object(await self._get(path, token, proxy), f"GET {path}")

    # -- account -------------------------------------------------------------------------

    async def me(self, at: str, proxy: str | None = None) -> dict[str, Any]:
        return await self._get_object("/me", at, proxy)

    async def subscriptions(self, at: str, proxy: str | None = None) -> dict[str, Any]:
        return await self._get_object("/billing/subscriptions", at, proxy)

    async def invite_mine(self, at: str, proxy: str | None = None) -> dict[str, Any]:
        return await self._get_object("/project_y/invite/mine", at, proxy)

    async def bootstrap(self, at: str, proxy: str | None = None) -> None:
        await self.request("GET", self.url("/m/bootstrap"), at, proxy=proxy, expect_json=False)

    async def invite_accept(self, at: str, code: str, proxy: str | None = None) -> dict[str, Any]:
        return _object(
            await self._post(
                "/project_y/invite/accept",
                at,
                {"invite_code": code},
                proxy,
                headers={"Cookie": f"oai-did={uuid.uuid4()}"},
            ),
            "POST /project_y/invite/accept",
        )

    async def nf_check(self, at: str, proxy: str | None = None) -> dict[str, Any]:
        data = await self._get("/nf/check", at, proxy)
        info = data.get("rate_limit_and_credit_balance") if isinstance(data, dict) else None
        return info if isinstance(info, dict) else {}

    async def username_check(self, at: str, username: str, proxy: str | None = None) -> bool:
        data = await self._post(
            "/project_y/profile/username/check", at, {"username": username}, proxy
        )
        return bool(isinstance(data, dict) and data.get("available"))

    async def username_set(
        self, at: str, username: str, proxy: str | None = None
    ) -> dict[str, Any]:
        data = await self._post(
            "/project_y/profile/username/set", at, {"username": username}, proxy
        )
        return _object(data, "POST /project_y/profile/username/set")

    # -- uploads -------------------------------------------------------------------------

    async def upload_image(
        self, at: str, data: bytes, filename: str, content_type: str, proxy: str | None = None
    ) -> str:
        res = await self.request(
            "POST",
            self.url("/uploads"),
            at,
            parts=[Part("file", data, filename, content_type), Part("file_name", filename)],
            proxy=proxy,
        )
        return str(self._field(res, "id", "POST /uploads"))

    async def upload_cameo_video(
        self, at: str, data: bytes, timestamps: str, proxy: str | None = None
    ) -> str:
        res = await self.request(
            "POST",
            self.url("/characters/upload"),
            at,
            parts=[Part("file", data, "video.mp4", "video/mp4"), Part("timestamps", timestamps)],
            proxy=proxy,
        )
        return str(self._field(res, "id", "POST /characters/upload"))

    async def upload_profile_asset(self, at: str, data: bytes, proxy: str | None = None) -> str:
        res = await self.request(
            "POST",
            self.url("/project_y/file/upload"),
            at,
            parts=[Part("file", data, "profile.webp", "image/webp"), Part("use_case", "profile")],
            proxy=proxy,
        )
        return str(self._field(res, "asset_pointer", "POST /project_y/file/upload"))

    # -- generation ----------------------------------------------------------------------

    async def create_image(self, at: str, payload: dict[str, Any], proxy: str | None = None) -> str:
        res = await self._post("/video_gen", at, payload, proxy, sentinel=True)
        return str(self._field(res, "id", "POST /video_gen"))

    async def create_video(self, at: str, payload: dict[str, Any], proxy: str | None = None) -> str:
        res = await self._post("/nf/create", at, payload, proxy, sentinel=True)
        return str(self._field(res, "id", "POST /nf/create"))

    async def create_storyboard(
        self, at: str, payload: dict[str, Any], proxy: str | None = None
    ) -> str:
        res = await self._post("/nf/create/storyboard", at, payload, proxy, sentinel=True)
        return str(self._field(res, "id", "POST /nf/create/storyboard"))

    async def recent_tasks(self, at: str, proxy: str | None = None) -> list[dict[str, Any]]:
        return (await self.recent_tasks_page(at, proxy)).items

    async def recent_tasks_page(
        self, at: str, proxy: str | None = None, *, limit: int = 20, cursor: str | None = None
    ) -> Page:
        """One page of the account's image tasks, newest first."""
        endpoint = "GET /v2/recent_tasks"
        data = await self._get("/v2/recent_tasks", at, proxy, limit=limit, cursor=cursor)
        return Page(_objects(data, "task_responses", endpoint), _next_cursor(data))

    async def pending(self, at: str, proxy: str | None = None) -> list[dict[str, Any]]:
        # A bare JSON array, unlike every other list endpoint.
        return _objects(await self._get("/nf/pending/v2", at, proxy), None, "GET /nf/pending/v2")

    async def drafts(
        self, at: str, proxy: str | None = None, limit: int = 15
    ) -> list[dict[str, Any]]:
        return (await self.drafts_page(at, proxy, limit=limit)).items

    async def drafts_page(
        self, at: str, proxy: str | None = None, *, limit: int = 15, cursor: str | None = None
    ) -> Page:
        """One page of the account's drafts (finished videos), newest first."""
        endpoint = "GET /project_y/profile/drafts"
        data = await self._get("/project_y/profile/drafts", at, proxy, limit=limit, cursor=cursor)
        return Page(_objects(data, "items", endpoint), _next_cursor(data))

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, at: str, generation_id: str, proxy: str | None = None) -> str:
        body = {
            "attachments_to_create": [{"generation_id": generation_id, "kind": "sora"}],
            "post_text": "",
        }
        res = await self._post("/project_y/post", at, body, proxy, sentinel=True)
        post = res.get("post") if isinstance(res, dict) else None
        return str(self._field(post, "id", "POST /project_y/post"))

    async def delete_post(self, at: str, post_id: str, proxy: str | None = None) -> None:
        await self._delete(f"/project_y/post/{quote(post_id, safe='')}", at, proxy)

    async def custom_parse(self, base_url: str, share_url: str, token: str) -> str:
        data = await self.request(
            "POST",
            base_url.rstrip("/") + "/get-sora-link",
            None,
            json={"url": share_url, "token": token},
        )
        if isinstance(data, dict) and data.get("error"):
            raise UpstreamFailure(
                Kind.BAD_REQUEST, f"custom parser: {data['error']}", endpoint="POST get-sora-link"
            )
        return str(self._field(data, "download_link", "POST get-sora-link"))

    # -- characters ----------------------------------------------------------------------

    async def cameo_status(
        self, at: str, cameo_id: str, proxy: str | None = None
    ) -> dict[str, Any]:
        return await self._get_object(
            f"/project_y/cameos/in_progress/{quote(cameo_id, safe='')}", at, proxy
        )

    async def finalize_character(
        self, at: str, body: dict[str, Any], proxy: str | None = None
    ) -> str:
        res = await self._post("/characters/finalize", at, body, proxy)
        character = res.get("character") if isinstance(res, dict) else None
        return str(self._field(character, "character_id", "POST /characters/finalize"))

    async def update_cameo(
        self, at: str, cameo_id: str, body: dict[str, Any], proxy: str | None = None
    ) -> Any:
        return await self._post(
            f"/project_y/cameos/by_id/{quote(cameo_id, safe='')}/update_v2", at, body, proxy
        )

    async def delete_character(self, at: str, character_id: str, proxy: str | None = None) -> None:
        # By character_id (ch_...), not the cameo id.
        await self._delete(f"/project_y/characters/{quote(character_id, safe='')}", at, proxy)

    async def download(
        self, url: str, *, proxy: str | None = None, max_bytes: int = 32 << 20
    ) -> bytes:
        """A small upstream asset (avatar) into memory, capped."""
        session, proxy_arg = self._route(proxy)
        timeout = self._settings.current.upstream.request_timeout
        endpoint = "GET asset"
        try:
            async with asyncio.timeout(timeout):
                async with session.get(url, proxy=proxy_arg) as resp:
                    if resp.status != 200:
                        raise UpstreamFailure(
                            Kind.SERVER if resp.status >= 500 else Kind.NOT_FOUND,
                            f"download failed: HTTP {resp.status}",
                            status=resp.status,
                            endpoint=endpoint,
                        )
                    data = await read_capped(resp, max_bytes)
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, endpoint=endpoint, timeout=timeout) from None
        if big := too_large(data, max_bytes, endpoint=endpoint):
            raise big
        return data

    # -- feed, search, profile -----------------------------------------------------------

    async def feed(
        self, at: str, limit: int, cut: str, cursor: str | None, proxy: str | None = None
    ) -> Any:
        return await self._get("/project_y/feed", at, proxy, limit=limit, cut=cut, cursor=cursor)

    async def profile_feed(
        self, at: str, user_id: str, limit: int, cursor: str | None = None, proxy: str | None = None
    ) -> Any:
        return await self._get(
            f"/project_y/profile_feed/{quote(user_id, safe='')}",
            at,
            proxy,
            limit=limit,
            cut="nf2",
            cursor=cursor,
        )

    async def profile(self, at: str, username: str, proxy: str | None = None) -> Any:
        return await self._get(f"/project_y/profile/username/{quote(username, safe='')}", at, proxy)

    async def search_mentions(
        self, at: str, username: str, intent: str, limit: int, proxy: str | None = None
    ) -> Any:
        return await self._get(
            "/project_y/profile/search_mentions",
            at,
            proxy,
            username=username,
            intent=intent,
            limit=limit,
        )
