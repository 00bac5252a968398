"""Guarded fetches of user-supplied URLs, the streaming media cache, its pruner and GET /tmp/{name}."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import aiohttp
from aiohttp import web
from yarl import URL

from . import keys
from .errors import (
    ApiError,
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    TimeoutError_,
    UpstreamError,
)
from .settings import Settings

log = logging.getLogger(__name__)

MB: Final = 1024 * 1024
CHUNK_SIZE: Final = 256 * 1024
MAX_REDIRECTS: Final = 5
# The only extensions the cache writes or serves, and the type each is served as. The type comes
# from here, never from the upstream, so a file can't be served as HTML.
CONTENT_TYPES: Final = MappingProxyType(
    {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "gif": "image/gif",
        "mp4": "video/mp4",
        "webm": "video/webm",
        "mov": "video/quicktime",
    }
)
_NAME_RE: Final = re.compile(r"[0-9a-f]{32}\.(?:" + "|".join(CONTENT_TYPES) + ")")
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# A download touches its .part file on every chunk, and stalls end at the read timeout, so a
# .part file this old was left behind by a crash.
_PART_MAX_AGE: Final = 3600.0
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str
    final_url: str


@dataclass(frozen=True, slots=True)
class CachedFile:
    name: str
    path: Path
    size: int
    content_type: str


def display_url(url: URL | str) -> str:
    """A URL fit for messages and logs: no credentials, query or fragment, at most 200 characters."""
    try:
        u = URL(url) if isinstance(url, str) else url
        text = str(u.with_user(None).with_query(None).with_fragment(None)) if u.absolute else str(u)
    except (ValueError, TypeError):
        text = str(url).split("?", 1)[0]
    return text if len(text) <= 200 else text[:197] + "..."


def check_url(url: str) -> URL:
    """Parse a user-supplied URL: only absolute http(s) URLs with a host pass (no network)."""
    try:
        parsed = URL(url)
        scheme = parsed.scheme.lower()
        host = parsed.raw_host
        parsed.port  # noqa: B018 - yarl validates the port lazily
    except (ValueError, TypeError):
        raise BadRequestError(f"Invalid URL: {display_url(url)}") from None
    if scheme not in ("http", "https"):
        # data: URLs are long and say nothing useful, so only the scheme is named.
        raise BadRequestError(
            f"Refusing to fetch {display_url(url) if scheme != 'data' else 'a data: URL'}: "
            f"the {scheme + ':' if scheme else 'missing'} scheme is not allowed, use http or https"
        )
    if not host:
        raise BadRequestError(f"Invalid URL: {display_url(url)} has no host")
    return parsed


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address; IPv6 that embeds IPv4 is judged by the IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # is_global alone misses multicast and (before 3.12) some special blocks; spell out the rest.
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _size(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n} bytes"


def _check_ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext not in CONTENT_TYPES:
        raise BadRequestError(
            f"Unsupported media type .{ext}: the cache keeps only {', '.join(CONTENT_TYPES)}"
        )
    return ext


def _with_context(exc: ApiError, note: str) -> ApiError:
    return type(exc)(f"{exc.message} ({note})", param=exc.param, code=exc.code)


class UrlGuard:
    """The one place user-supplied URLs are fetched: scheme, address, redirect, size and time rules."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session

    def allows(self, ip: IPAddress) -> bool:
        """Whether the guard may connect to this address under the current settings."""
        return self._settings.current.security.allow_private_urls or is_public_address(ip)

    async def fetch(
        self, url: str, *, max_bytes: int | None = None, kind: str = "image"
    ) -> Fetched:
        """Download a user-supplied URL, following at most MAX_REDIRECTS checked redirects."""
        security = self._settings.current.security
        limit = security.fetch_max_mb * MB if max_bytes is None else max_bytes
        first = current = check_url(url)
        try:
            # One bound over DNS, every hop and the body: a slow-drip server can't hold a job.
            # A fetch_timeout of 0 disables it.
            async with asyncio.timeout(security.fetch_timeout or None):
                for hop in range(MAX_REDIRECTS + 1):
                    try:
                        # A redirect target passes the same scheme and address checks as the first URL.
                        current = check_url(str(current)) if hop else current
                        result = await self._hop(current, limit, kind)
                    except ApiError as exc:
                        if hop:
                            raise _with_context(
                                exc, f"redirected from {display_url(first)}"
                            ) from None
                        raise
                    if isinstance(result, Fetched):
                        return result
                    current = result
        except TimeoutError:
            raise BadRequestError(
                f"Could not fetch {display_url(current)}: timed out after {security.fetch_timeout:g} s"
            ) from None
        raise BadRequestError(
            f"Could not fetch {display_url(first)}: more than {MAX_REDIRECTS} redirects"
        )

    async def _resolve(self, url: URL) -> list[str]:
        """Every address the host resolves to, refusing the URL if any one is not allowed."""
        host = url.raw_host
        assert host is not None  # check_url made sure
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise BadRequestError(
                f"Could not fetch {display_url(url)}: cannot resolve the host {host}"
            ) from None
        addresses: list[str] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(sockaddr[0])
            if not self.allows(ip):
                # Refuse outright rather than filter: a name that mixes public and private
                # addresses is an attack or a misconfiguration, either way not worth serving.
                what = f"{ip} is" if str(ip) == host else f"{host} resolves to {ip}, which is"
                raise BadRequestError(
                    f"Refusing to fetch {display_url(url)}: {what} not a public address "
                    "(set security.allow_private_urls to allow it)"
                )
            if str(ip) not in addresses:
                addresses.append(str(ip))
        if not addresses:
            raise BadRequestError(f"Could not fetch {display_url(url)}: {host} has no IP address")
        return addresses

    async def _hop(self, url: URL, limit: int, kind: str) -> Fetched | URL:
        """One request: the Fetched body, or the (not yet checked) URL a redirect points to."""
        addresses = await self._resolve(url)
        shown = display_url(url)
        # Check-then-pin against DNS rebinding: the request goes to the IP literal we just checked
        # (aiohttp does no lookup for IP hosts), with the real name in Host and, for TLS, in
        # SNI and certificate checks via server_hostname. A guarded resolver would need its own
        # connector and session; pinning works on the app's one shared session. The cookie jar
        # ignores cookies from IP hosts, so a fetched site can't plant cookies either.
        host_header = url.host_port_subcomponent or url.raw_host or ""
        server_hostname = url.raw_host if url.scheme == "https" else None
        failure = "cannot connect"
        for address in addresses:
            try:
                async with self._session.get(
                    url.with_host(address),
                    headers={"Host": host_header},
                    allow_redirects=False,
                    raise_for_status=False,
                    server_hostname=server_hostname,
                ) as resp:
                    return await self._read(url, resp, limit, kind)
            except aiohttp.ClientSSLError as exc:
                raise BadRequestError(f"Could not fetch {shown}: TLS error ({exc})") from None
            except aiohttp.ClientConnectorError as exc:
                # Nothing was sent yet, so trying the host's next address is safe.
                failure = f"cannot connect ({exc.strerror or type(exc).__name__})"
            except aiohttp.ClientError as exc:
                raise BadRequestError(
                    f"Could not fetch {shown}: {type(exc).__name__}: {exc}"
                ) from None
        raise BadRequestError(f"Could not fetch {shown}: {failure}")

    async def _read(
        self, url: URL, resp: aiohttp.ClientResponse, limit: int, kind: str
    ) -> Fetched | URL:
        shown = display_url(url)
        location = resp.headers.get("Location")
        if resp.status in _REDIRECTS and location:
            try:
                target = url.join(URL(location))
            except (ValueError, TypeError):
                raise BadRequestError(f"Could not fetch {shown}: invalid redirect") from None
            return target
        if not 200 <= resp.status < 300:
            raise BadRequestError(f"Could not fetch {shown}: HTTP {resp.status}")
        if resp.content_length is not None and resp.content_length > limit:
            raise PayloadTooLargeError(
                f"The {kind} at {shown} is {_size(resp.content_length)}, over the {_size(limit)} limit"
            )
        # Content-Length may be absent or (with compression) not the decoded size: count too.
        chunks: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(
                    f"The {kind} at {shown} is larger than the {_size(limit)} limit"
                )
            chunks.append(chunk)
        return Fetched(b"".join(chunks), resp.content_type, str(url))


class MediaCache:
    """Files under storage.media_dir with random names, served at /tmp/{name} until media_ttl."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        config = settings.current
        # media_dir needs a restart to change, so it is fixed here; media_ttl is re-read on use.
        self.dir = config.path(config.storage.media_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _ttl(self) -> float:
        return float(self._settings.current.storage.media_ttl)

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
        read_timeout: float = 60.0,
    ) -> CachedFile:
        """Stream a trusted upstream media URL to disk; no partial file survives a failure."""
        ext = _check_ext(ext)
        limit = self._settings.current.storage.media_max_mb * MB if max_bytes is None else max_bytes
        name, path = self._new_path(ext)
        part = path.with_name(name + ".part")
        shown = display_url(url)
        # No total bound by default (videos are large, links are slow); a stall ends at sock_read.
        client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=read_timeout, sock_read=read_timeout
        )
        try:
            async with asyncio.timeout(timeout), self._get(url, proxy, client_timeout) as resp:
                size = await self._write(resp, part, limit, shown)
            os.replace(part, path)
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
            # Runs after os.replace too, where the .part is already gone; on any failure
            # (cancellation included) this is what removes the partial download.
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        log.info("cached %s (%s) as %s", shown, _size(size), name)
        return CachedFile(name, path, size, CONTENT_TYPES[ext])

    @contextlib.asynccontextmanager
    async def _get(
        self, url: str, proxy: str | None, client_timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        if proxy and proxy.lower().startswith("socks"):
            # aiohttp's per-request proxy speaks only HTTP CONNECT; SOCKS needs its own connector.
            from aiohttp_socks import ProxyConnector  # imported only when a SOCKS proxy is used

            connector = ProxyConnector.from_url(proxy)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(url, timeout=client_timeout, raise_for_status=False) as resp,
            ):
                yield resp
        else:
            async with self._session.get(
                url, proxy=proxy or None, timeout=client_timeout, raise_for_status=False
            ) as resp:
                yield resp

    async def _write(self, resp: aiohttp.ClientResponse, part: Path, limit: int, shown: str) -> int:
        if resp.status != 200:
            raise UpstreamError(f"Caching failed: HTTP {resp.status} from {shown}")
        expected = resp.content_length
        if expected is not None and expected > limit:
            raise UpstreamError(
                f"Caching failed: {shown} is {_size(expected)}, over the {_size(limit)} limit"
            )
        written = 0
        with part.open("xb") as f:
            try:
                async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
                    written += len(chunk)
                    if written > limit:
                        raise UpstreamError(
                            f"Caching failed: {shown} is larger than the {_size(limit)} limit"
                        )
                    # A plain write: 256 KiB lands in the page cache in well under a millisecond,
                    # cheaper than a thread hop per chunk, and no executor job can outlive the
                    # file if the download is cancelled.
                    f.write(chunk)
            except aiohttp.ClientPayloadError:
                raise UpstreamError(
                    f"Caching failed: the connection to {shown} dropped after "
                    f"{written}{f' of {expected}' if expected is not None else ''} bytes"
                ) from None
        # With compression Content-Length counts encoded bytes, so only plain bodies are compared.
        if expected is not None and written != expected and "Content-Encoding" not in resp.headers:
            raise UpstreamError(f"Caching failed: {shown} sent {written} of {expected} bytes")
        return written

    async def store_bytes(self, data: bytes, *, ext: str) -> CachedFile:
        """Keep bytes we already hold (an upload) as a cached file."""
        ext = _check_ext(ext)
        limit = self._settings.current.storage.media_max_mb * MB
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"The file is {_size(len(data))}, over the {_size(limit)} limit"
            )
        name, path = self._new_path(ext)
        await asyncio.to_thread(_write_atomic, path, data)
        return CachedFile(name, path, len(data), CONTENT_TYPES[ext])

    def url_for(self, name: str) -> str:
        """The public link of a cached file."""
        return f"{self._settings.current.public_base}/tmp/{name}"

    def resolve(self, name: str) -> Path | None:
        """The path of a live cached file; only names this cache could have made are looked up."""
        expires = self.expires_at(name)
        if expires is None or expires <= time.time():
            return None
        return self.dir / name

    def expires_at(self, name: str) -> float | None:
        """When a cached file stops being served (mtime + media_ttl), or None if there is none."""
        # The strict pattern is what rules out traversal: no slash, dot-dot or other file.
        if not _NAME_RE.fullmatch(name):
            return None
        try:
            st = (self.dir / name).stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return st.st_mtime + self._ttl()

    def delete(self, name: str) -> bool:
        """Remove a cached file; False when there was none."""
        if not _NAME_RE.fullmatch(name):
            return False
        try:
            (self.dir / name).unlink()
        except FileNotFoundError:
            return False
        return True

    def prune(self) -> int:
        """Delete expired files and abandoned .part files; returns how many were removed."""
        now = time.time()
        ttl = self._ttl()
        removed = 0
        with os.scandir(self.dir) as entries:
            for entry in entries:
                # Only names this cache makes are touched, in case media_dir points somewhere shared.
                if _NAME_RE.fullmatch(entry.name):
                    max_age = ttl
                elif entry.name.endswith(".part") and _NAME_RE.fullmatch(entry.name[:-5]):
                    max_age = _PART_MAX_AGE
                else:
                    continue
                try:
                    if entry.is_file(follow_symlinks=False) and (
                        entry.stat(follow_symlinks=False).st_mtime + max_age <= now
                    ):
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass  # deleted meanwhile (delete() or a second pruner)
                except OSError as exc:
                    log.warning("cannot prune %s: %s", entry.name, exc)
        return removed

    async def run_pruner(self) -> None:
        """Prune now and then every storage.prune_interval seconds, until cancelled."""
        while True:
            try:
                removed = await asyncio.to_thread(self.prune)
                if removed:
                    log.info("pruned %d expired media file(s)", removed)
            except Exception:
                log.exception("media pruning failed; retrying next interval")
            # The floor keeps a zero interval from spinning the loop.
            await asyncio.sleep(max(self._settings.current.storage.prune_interval, 0.1))


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    try:
        with part.open("xb") as f:
            f.write(data)
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


async def serve_media(request: web.Request) -> web.StreamResponse:
    """GET /tmp/{name}: a cached file for anyone holding the link, with Range and sendfile."""
    media = request.app[keys.MEDIA]
    name = request.match_info["name"]
    path = media.resolve(name)
    expires = media.expires_at(name)
    if path is None or expires is None:
        raise NotFoundError("Media file not found or expired")
    # Caches may keep the file exactly as long as we serve it, never past its expiry.
    max_age = max(0, int(expires - time.time()))
    ext = name.rsplit(".", 1)[1]
    return web.FileResponse(
        path,
        headers={
            "Cache-Control": f"public, max-age={max_age}",
            "Content-Type": CONTENT_TYPES[ext],
            "X-Content-Type-Options": "nosniff",
        },
    )


async def media_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx entry: the URL guard and the media cache, and the pruner task while running."""
    settings, session = app[keys.SETTINGS], app[keys.HTTP]
    app[keys.GUARD] = UrlGuard(settings, session)
    media = app[keys.MEDIA] = MediaCache(settings, session)
    pruner = asyncio.create_task(media.run_pruner(), name="sora2api.media.pruner")
    try:
        yield
    finally:
        pruner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruner
