"""The URL guard: the one place URLs from users and upstreams are checked, pinned and fetched."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
from yarl import URL

from .errors import ApiError, BadRequestError, PayloadTooLargeError
from .settings import Settings

MB: Final = 1024 * 1024
MAX_REDIRECTS: Final = 5
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str
    final_url: str


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request target: the URL on a checked IP literal, and the real name for Host and TLS."""

    url: URL
    host: str
    server_hostname: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Host": self.host} if self.host else {}


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


def same_origin(url: str | URL, other: str) -> bool:
    """Whether two URLs share scheme, host and port (an unparsable one shares nothing)."""
    try:
        a, b = (URL(u) if isinstance(u, str) else u for u in (url, other))
        return (a.scheme.lower(), (a.raw_host or "").lower(), a.port) == (
            b.scheme.lower(),
            (b.raw_host or "").lower(),
            b.port,
        ) and bool(a.raw_host)
    except (ValueError, TypeError):
        return False


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


class UnresolvedHostError(BadRequestError):
    """The host of a URL has no address (here; a proxy may still know it)."""


def _with_context(exc: ApiError, note: str) -> ApiError:
    return type(exc)(f"{exc.message} ({note})", param=exc.param, code=exc.code)


class LocalLinks(Protocol):
    """Links that are this server's own files (own_links.py), read without the network."""

    async def read(self, url: str, *, kind: str, param: str, max_bytes: int) -> bytes | None:
        """The file's bytes; None when `url` is not such a link; a 400 when it is, but is gone."""
        ...


class UrlGuard:
    """The one place user-supplied URLs are fetched: scheme, address, redirect, size and time rules."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        local: LocalLinks | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._local = local

    def for_request(self, local: LocalLinks) -> UrlGuard:
        """This guard as one request sees it: links to this server's own media come from `local`."""
        return UrlGuard(self._settings, self._session, local)

    async def fetch_input(self, url: str, *, kind: str, param: str) -> bytes:
        """A request's media URL: a result link of this server read from its cache (no
        network), any other URL fetched through the guard."""
        if self._local is not None:
            limit = self._settings.current.security.fetch_max_mb * MB
            data = await self._local.read(url, kind=kind, param=param, max_bytes=limit)
            if data is not None:
                return data
        return (await self.fetch(url, kind=kind)).data

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
            raise UnresolvedHostError(
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

    async def pinned(self, url: URL) -> list[Pinned]:
        """The checked addresses of a URL as request targets; refuses it if any is not allowed."""
        addresses = await self._resolve(url)
        # Check-then-pin against DNS rebinding: the request goes to the IP literal we just checked
        # (aiohttp does no lookup for IP hosts), with the real name in Host and, for TLS, in
        # SNI and certificate checks via server_hostname. A guarded resolver would need its own
        # connector and session; pinning works on the app's one shared session. The cookie jar
        # ignores cookies from IP hosts, so a fetched site can't plant cookies either.
        host_header = url.host_port_subcomponent or url.raw_host or ""
        server_hostname = url.raw_host if url.scheme == "https" else None
        return [Pinned(url.with_host(a), host_header, server_hostname) for a in addresses]

    async def _hop(self, url: URL, limit: int, kind: str) -> Fetched | URL:
        """One request: the Fetched body, or the (not yet checked) URL a redirect points to."""
        targets = await self.pinned(url)
        shown = display_url(url)
        failure = "cannot connect"
        for target in targets:
            try:
                async with self._session.get(
                    target.url,
                    headers=target.headers,
                    allow_redirects=False,
                    raise_for_status=False,
                    server_hostname=target.server_hostname,
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
        if resp.status in REDIRECTS and location:
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
