"""The streaming media cache (every hop through the URL guard) and its pruner; GET /tmp/{name} is
routes/media.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import aiohttp
from yarl import URL

from .errors import (
    ApiError,
    BadRequestError,
    PayloadTooLargeError,
    TimeoutError_,
    UpstreamError,
)
from .media_budget import Claim, DiskBudget, size_text
from .settings import Settings
from .sniff import MIME, media_type
from .upstream.errors import Kind, classify
from .urlguard import (  # re-exported: the guard used to live here
    MAX_REDIRECTS,
    REDIRECTS,
    Fetched,
    IPAddress,
    Pinned,
    UnresolvedHostError,
    UrlGuard,
    check_url,
    display_url,
    is_public_address,
)

__all__ = [
    "CONTENT_TYPES",
    "CachedFile",
    "Fetched",
    "IPAddress",
    "MediaCache",
    "MediaFailure",
    "UrlGuard",
    "check_url",
    "display_url",
    "is_public_address",
]

log = logging.getLogger(__name__)

MB: Final = 1024 * 1024
CHUNK_SIZE: Final = 256 * 1024
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
# A download touches its .part file on every chunk, and stalls end at the read timeout, so a
# .part file this old was left behind by a crash.
_PART_MAX_AGE: Final = 3600.0


@dataclass(frozen=True, slots=True)
class _Opened:
    """The final response of a download and the URL it came from (after redirects)."""

    response: aiohttp.ClientResponse
    url: URL


@dataclass(frozen=True, slots=True)
class CachedFile:
    name: str
    path: Path
    size: int
    content_type: str


def _check_ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext not in CONTENT_TYPES:
        raise BadRequestError(
            f"Unsupported media type .{ext}: the cache keeps only {', '.join(CONTENT_TYPES)}"
        )
    return ext


class MediaFailure(UpstreamError):
    """A media download that failed upstream, classified like every other upstream answer."""

    def __init__(self, message: str, kind: Kind) -> None:
        super().__init__(message, code=kind.value)
        self.kind = kind


class MediaCache:
    """Files under storage.media_dir with random names, served at /tmp/{name} until media_ttl."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._guard = UrlGuard(settings, session)
        config = settings.current
        # media_dir needs a restart to change, so it is fixed here; media_ttl is re-read on use.
        self.dir = config.path(config.storage.media_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.budget = DiskBudget(self.dir, settings)

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

    async def store_bytes(self, data: bytes, *, ext: str) -> CachedFile:
        """Keep bytes we already hold (an upload) as a cached file."""
        ext = _check_ext(ext)
        limit = self._settings.current.storage.media_max_mb * MB
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"The file is {size_text(len(data))}, over the {size_text(limit)} limit"
            )
        if media_type(data) not in _FAMILY[ext]:
            raise BadRequestError(f"The file is not {_WHAT[ext]}")
        claim = self.budget.claim(len(data), "the file")
        name, path = self._new_path(ext)
        kept = False
        try:
            claim.add(len(data))
            await asyncio.to_thread(_write_atomic, path, data)
            kept = True
        finally:
            claim.end(kept=kept)
        return CachedFile(name, path, len(data), CONTENT_TYPES[ext])

    async def adopt_file(self, source: str | os.PathLike[str], *, ext: str) -> CachedFile:
        """Take in a file a provider already wrote (inline video data), checked like a download
        (size limit, first bytes, disk budget) and moved, never read into memory. The source is
        consumed whether it is kept or refused."""
        src = Path(source)
        try:
            ext = _check_ext(ext)
            limit = self._settings.current.storage.media_max_mb * MB
            size, head = await asyncio.to_thread(_stat_and_head, src)
            if size > limit:
                raise MediaFailure(
                    f"Caching failed: the inline file is {size_text(size)}, over the "
                    f"{size_text(limit)} limit",
                    Kind.MALFORMED,
                )
            actual = _expect(head, ext, "the inline file", "application/octet-stream")
            name, path = self._new_path(actual)
            claim = self.budget.claim(size, "the inline file")
            try:
                claim.add(size)
                await asyncio.to_thread(_move, src, path)
                claim.end(kept=True)
            finally:
                claim.end(kept=False)  # no-op once kept
        except OSError as exc:
            raise ApiError(f"Caching failed: cannot move the inline file: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(src)  # gone already when it was moved
        log.info("cached an inline file (%s) as %s", size_text(size), name)
        return CachedFile(name, path, size, CONTENT_TYPES[actual])

    def url_for(self, name: str) -> str:
        """The public link of a cached file."""
        return f"{self._settings.current.public_base}/tmp/{name}"

    def lookup(self, name: str) -> CachedFile | None:
        """A live cached file by its link's name; None for a name this cache could not have made,
        or a file that expired or is gone."""
        path = self.resolve(name)
        if path is None:
            return None
        try:
            size = path.stat().st_size
        except OSError:
            return None
        return CachedFile(name, path, size, CONTENT_TYPES[name.rsplit(".", 1)[1]])

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
        path = self.dir / name
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return False
        self.budget.forget(size)
        return True

    def prune(self) -> int:
        """Delete expired files and abandoned .part files; returns how many were removed."""
        removed, freed, _ = self._sweep()
        self.budget.forget(freed)
        return removed

    def _sweep(self) -> tuple[int, int, int]:
        """Remove what expired: (files removed, their bytes, bytes of every file left)."""
        now = time.time()
        ttl = self._ttl()
        removed = freed = kept = 0
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
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if st.st_mtime + max_age <= now:
                        os.unlink(entry.path)
                        removed += 1
                        freed += st.st_size
                    else:
                        kept += st.st_size
                except FileNotFoundError:
                    pass  # deleted meanwhile (delete() or a second pruner)
                except OSError as exc:
                    log.warning("cannot prune %s: %s", entry.name, exc)
        return removed, freed, kept

    async def run_pruner(self) -> None:
        """Prune now and then every storage.prune_interval seconds, until cancelled."""
        while True:
            try:
                budget = self.budget
                epoch, idle = budget.epoch, budget.active == 0
                removed, freed, kept = await asyncio.to_thread(self._sweep)
                if idle and budget.active == 0 and budget.epoch == epoch:
                    # Nothing was written or deleted during the pass: its count is exact, and
                    # corrects any drift (files removed by hand).
                    budget.used = kept
                else:
                    budget.forget(freed)
                if removed:
                    log.info("pruned %d expired media file(s)", removed)
            except Exception:
                log.exception("media pruning failed; retrying next interval")
            # The floor keeps a zero interval from spinning the loop.
            await asyncio.sleep(max(self._settings.current.storage.prune_interval, 0.1))


def _stat_and_head(path: Path) -> tuple[int, bytes]:
    with path.open("rb") as f:
        return os.fstat(f.fileno()).st_size, f.read(_SNIFF_BYTES)


def _move(src: Path, path: Path) -> None:
    """Move a file into the cache (a copy when it is on another disk); its age starts now."""
    part = path.with_name(path.name + ".part")
    try:
        try:
            os.replace(src, part)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(src, part)
        os.utime(part)  # media_ttl counts from adoption, not from when the provider wrote it
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    try:
        with part.open("xb") as f:
            f.write(data)
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


_SNIFF_BYTES: Final = 12  # enough for every signature sniff.media_type knows
_VIDEO: Final = frozenset({"mp4", "mov"})
_IMAGE: Final = frozenset({"png", "jpeg", "webp", "gif"})
# What the bytes may be for each extension a caller asks for. Images are one family because a
# thumbnail's extension is guessed from its link; the file is then named by what it really is.
_FAMILY: Final = MappingProxyType(
    {
        "mp4": _VIDEO,
        "mov": _VIDEO,
        "webm": frozenset({"webm"}),
        **dict.fromkeys(("png", "jpg", "jpeg", "webp", "gif"), _IMAGE),
    }
)
_WHAT: Final = MappingProxyType(
    {
        "mp4": "an MP4 video",
        "mov": "an MP4 video",
        "webm": "a WebM video",
        **dict.fromkeys(("png", "jpg", "jpeg", "webp", "gif"), "an image (PNG, JPEG, WebP or GIF)"),
    }
)


def _expect(head: bytes, ext: str, shown: str, content_type: str) -> str:
    """The extension the first bytes prove, or a classified failure quoting what came instead."""
    kind = media_type(head)
    if kind in _FAMILY[ext]:
        return ext if MIME[kind] == CONTENT_TYPES[ext] else ("jpg" if kind == "jpeg" else kind)
    if not head:
        raise MediaFailure(
            f"Caching failed: {shown} answered HTTP 200 with an empty body instead of {_WHAT[ext]}",
            Kind.MALFORMED,
        )
    failure = classify(200, head[:2048], content_type, "media")
    text = failure.message
    if not text.isprintable():
        text = f"the body starts with {head[:16].hex(' ')}"
    got = f"{kind.upper()} data" if kind else "something else"
    raise MediaFailure(
        f"Caching failed: {shown} answered HTTP 200 with {got} instead of {_WHAT[ext]}: {text}",
        failure.kind,
    )


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
