"""Downloading into the media cache: store_url streams a URL to disk, each redirect hop through the
URL guard, credentials only to their own origin, the bytes checked against the extension."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from .errors import ApiError, TimeoutError_, UpstreamError
from .media_budget import Claim, DiskBudget, size_text
from .media_kinds import (
    _SNIFF_BYTES,
    CHUNK_SIZE,
    CONTENT_TYPES,
    MB,
    CachedFile,
    MediaFailure,
    _check_ext,
    _expect,
)
from .settings import Settings
from .upstream.errors import Kind, classify
from .urlguard import (
    MAX_REDIRECTS,
    REDIRECTS,
    Pinned,
    UnresolvedHostError,
    UrlGuard,
    check_url,
    display_url,
)

# The same logger as the rest of the cache, as before the download half had its own module.
log = logging.getLogger("sora2api.media")


@dataclass(frozen=True, slots=True)
class _Opened:
    """The final response of a download and the URL it came from (after redirects)."""

    response: aiohttp.ClientResponse
    url: URL


class MediaFetcher:
    """The download half of the media cache: streams a URL to disk, every hop through the guard."""

    dir: Path
    budget: DiskBudget

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._guard = UrlGuard(settings, session)

    def _new_path(self, ext: str) -> tuple[str, Path]:
        name = f"{secrets.token_hex(16)}.{ext}"
        return name, self.dir / name

    async def store_url(
        self,
        url: str,
        *,
        ext: str,
        proxy: str | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - callers pass a plain number of seconds
        read_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        trusted: str | None = None,
    ) -> CachedFile:
        """Stream an upstream media URL to disk through the URL guard, checking what arrives is
        the kind `ext` names; no partial file survives a failure. `headers` (an account's key)
        go to the URL's own origin only, never to a redirect elsewhere; `trusted` is one more
        configured origin (an account's base_url) the guard lets through like upstream.base_url."""
        ext = _check_ext(ext)
        limit = self._settings.current.storage.media_max_mb * MB if max_bytes is None else max_bytes
        if read_timeout is None:
            read_timeout = self._settings.current.upstream.request_timeout
        name, path = self._new_path(ext)
        part = path.with_name(name + ".part")
        shown = display_url(url)
        # No total bound by default (videos are large, links are slow); a stall ends at sock_read.
        client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=read_timeout, sock_read=read_timeout
        )
        claim: Claim | None = None
        try:
            async with (
                asyncio.timeout(timeout),
                self._open(url, proxy, client_timeout, headers, trusted) as resp,
            ):
                shown = display_url(resp.url)
                await _check_response(resp.response, limit, shown)
                claim = self.budget.claim(_announced(resp.response), shown)
                size, actual = await self._write(resp.response, part, limit, shown, ext, claim)
            if actual != ext:
                # Served by its real type: the name's extension is what sets Content-Type.
                name, path = f"{name.rsplit('.', 1)[0]}.{actual}", path.with_suffix(f".{actual}")
            os.replace(part, path)
            claim.end(kept=True)
        except aiohttp.ServerTimeoutError:
            raise TimeoutError_(
                f"Caching failed: no data from {shown} for {read_timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"Caching failed: {type(exc).__name__} while downloading {shown}: {exc}"
            ) from None
        except TimeoutError:
            raise TimeoutError_(
                f"Caching failed: {shown} took longer than {timeout or 0:g} s"
            ) from None
        except OSError as exc:
            raise ApiError(f"Caching failed: cannot write the media file: {exc.strerror}") from None
        finally:
            if claim is not None:
                claim.end(kept=False)  # no-op once the file was kept
            # Runs after os.replace too, where the .part is already gone; on any failure
            # (cancellation included) this is what removes the partial download.
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        log.info("cached %s (%s) as %s", shown, size_text(size), name)
        return CachedFile(name, path, size, CONTENT_TYPES[actual])

    def _trusted(self, url: URL, extra: str | None = None) -> bool:
        """Whether a URL is on the origin of an upstream the admin configured (private or not)."""
        current = self._settings.current
        configured = (
            current.upstream.base_url,
            current.upstream.third_party_url,
            current.generation.watermark_custom_url,
            extra,
        )
        return any(_same_origin(url, c) for c in configured if c)

    async def _targets(self, url: URL, via_proxy: bool, trusted: str | None = None) -> list[Pinned]:
        """Where one hop may go: the URL itself on a configured origin, else its checked addresses."""
        if self._trusted(url, trusted):
            return [Pinned(url, "", None)]
        try:
            return await self._guard.pinned(url)
        except UnresolvedHostError:
            # Behind a proxy a name may resolve only there; it goes out through the proxy's network,
            # not ours. Names that resolve here (localhost, internal names) were checked above.
            if via_proxy:
                return [Pinned(url, "", None)]
            raise

    @contextlib.asynccontextmanager
    async def _open(
        self,
        url: str,
        proxy: str | None,
        client_timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str] | None = None,
        trusted: str | None = None,
    ) -> AsyncIterator[_Opened]:
        """The final response after at most MAX_REDIRECTS redirects, each hop passing the guard."""
        async with contextlib.AsyncExitStack() as stack:
            session = self._session
            via_proxy = bool(proxy)
            if proxy and proxy.lower().startswith("socks"):
                # aiohttp's per-request proxy speaks only HTTP CONNECT; SOCKS needs a connector.
                from aiohttp_socks import ProxyConnector  # imported only when SOCKS is used

                connector = ProxyConnector.from_url(proxy)
                session = await stack.enter_async_context(
                    aiohttp.ClientSession(connector=connector)
                )
                proxy = None
            first = current = _checked(url)
            for hop in range(MAX_REDIRECTS + 1):
                try:
                    targets = await self._targets(current, via_proxy=via_proxy, trusted=trusted)
                except ApiError as exc:
                    note = f" (redirected from {display_url(first)})" if hop else ""
                    raise MediaFailure(
                        f"Caching failed: {exc.message}{note}", Kind.BAD_REQUEST
                    ) from None
                # Credentials stay on the origin they were given for.
                extra = headers if headers and _same_origin(current, str(first)) else None
                resp = await self._send(session, targets, proxy, client_timeout, extra)
                try:
                    location = resp.headers.get("Location")
                    if resp.status in REDIRECTS and location:
                        current = _redirect_target(current, location, first)
                        continue
                    yield _Opened(resp, current)
                    return
                finally:
                    resp.release()
            raise MediaFailure(
                f"Caching failed: more than {MAX_REDIRECTS} redirects from {display_url(first)}",
                Kind.MALFORMED,
            )

    async def _send(
        self,
        session: aiohttp.ClientSession,
        targets: list[Pinned],
        proxy: str | None,
        client_timeout: aiohttp.ClientTimeout,
        extra: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """GET the first target that accepts a connection (nothing is sent to the ones before)."""
        error: aiohttp.ClientConnectorError | None = None
        for target in targets:
            try:
                return await session.get(
                    target.url,
                    headers={**extra, **target.headers} if extra else target.headers,
                    proxy=proxy or None,
                    timeout=client_timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                    server_hostname=target.server_hostname,
                )
            except aiohttp.ClientSSLError:
                raise
            except aiohttp.ClientConnectorError as exc:
                error = exc
        assert error is not None  # targets is never empty
        raise error

    async def _write(
        self,
        resp: aiohttp.ClientResponse,
        part: Path,
        limit: int,
        shown: str,
        ext: str,
        claim: Claim,
    ) -> tuple[int, str]:
        """Stream the body into `part`; returns its size and the extension its bytes show."""
        expected = resp.content_length
        received = 0
        head = b""
        actual: str | None = None
        with part.open("xb") as f:
            try:
                async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
                    received += len(chunk)
                    if received > limit:
                        raise MediaFailure(
                            f"Caching failed: {shown} is larger than the {size_text(limit)} limit",
                            Kind.MALFORMED,
                        )
                    if actual is None:
                        # Nothing is written until the first bytes prove the kind of file.
                        head += chunk
                        if len(head) < _SNIFF_BYTES:
                            continue
                        actual = _expect(head, ext, shown, resp.content_type)
                        chunk, head = head, b""
                    claim.add(len(chunk))
                    # A plain write: 256 KiB lands in the page cache in well under a millisecond,
                    # cheaper than a thread hop per chunk, and no executor job can outlive the
                    # file if the download is cancelled.
                    f.write(chunk)
            except aiohttp.ClientPayloadError:
                raise UpstreamError(
                    f"Caching failed: the connection to {shown} dropped after "
                    f"{received}{f' of {expected}' if expected is not None else ''} bytes"
                ) from None
            if actual is None:
                actual = _expect(head, ext, shown, resp.content_type)
                claim.add(len(head))
                f.write(head)
        # With compression Content-Length counts encoded bytes, so only plain bodies are compared.
        if expected is not None and received != expected and "Content-Encoding" not in resp.headers:
            raise UpstreamError(f"Caching failed: {shown} sent {received} of {expected} bytes")
        return received, actual


async def _check_response(resp: aiohttp.ClientResponse, limit: int, shown: str) -> None:
    """Refuse an error status (quoting the host's reason) or an announced size over the limit."""
    if resp.status != 200:
        body = await _peek(resp)
        failure = classify(resp.status, body, resp.content_type, "media")
        raise MediaFailure(
            f"Caching failed: HTTP {resp.status} from {shown}: {failure.message}", failure.kind
        )
    expected = resp.content_length
    if expected is not None and expected > limit:
        raise MediaFailure(
            f"Caching failed: {shown} is {size_text(expected)}, over the {size_text(limit)} limit",
            Kind.MALFORMED,
        )


async def _peek(resp: aiohttp.ClientResponse) -> bytes:
    """The first 2 KB of an error body, enough to quote the upstream's reason."""
    data = b""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        while len(data) < 2048:
            piece = await resp.content.read(2048 - len(data))
            if not piece:
                break
            data += piece
    return data


def _announced(resp: aiohttp.ClientResponse) -> int | None:
    """The size a 200 promises, when it is the size written (no content coding)."""
    if resp.status != 200 or "Content-Encoding" in resp.headers:
        return None
    return resp.content_length


def _same_origin(url: URL, configured: str) -> bool:
    try:
        other = URL(configured)
        theirs = (other.scheme.lower(), (other.raw_host or "").lower(), other.port)
    except (ValueError, TypeError):
        return False
    return (url.scheme.lower(), (url.raw_host or "").lower(), url.port) == theirs


def _checked(url: str, first: URL | None = None) -> URL:
    """check_url for a download hop, as a classified failure naming where a redirect came from."""
    try:
        return check_url(url)
    except ApiError as exc:
        note = f" (redirected from {display_url(first)})" if first is not None else ""
        raise MediaFailure(f"Caching failed: {exc.message}{note}", Kind.BAD_REQUEST) from None


def _redirect_target(current: URL, location: str, first: URL) -> URL:
    try:
        target = str(current.join(URL(location)))
    except (ValueError, TypeError):
        raise MediaFailure(
            f"Caching failed: {display_url(current)} sent an invalid redirect", Kind.MALFORMED
        ) from None
    return _checked(target, first)
