"""Transport failures of any backend call (no answer, no connection, too big), classified once."""

from __future__ import annotations

import aiohttp

from .errors import Kind, UpstreamFailure

# What a call's `except` catches and hands to transport_failure (UpstreamFailure is none of these).
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def transport_failure(
    exc: BaseException, *, endpoint: str, timeout: float, upstream: str = "Sora"
) -> UpstreamFailure:
    """The UpstreamFailure of one call that got no usable answer; sent=False only when the
    connection provably never opened, so only then may a create be sent again."""
    # ClientConnectorError is also an OSError and ConnectionTimeoutError a TimeoutError: order matters.
    if isinstance(exc, aiohttp.ClientConnectorError):
        message = f"connection failed: {exc.os_error or exc}"
        return UpstreamFailure(
            Kind.TRANSPORT, message, endpoint=endpoint, sent=False, upstream=upstream
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamFailure(
            Kind.TIMEOUT, "no connection in time", endpoint=endpoint, sent=False, upstream=upstream
        )
    if isinstance(exc, TimeoutError):
        message = f"no answer within {timeout:g} s"
        return UpstreamFailure(Kind.TIMEOUT, message, endpoint=endpoint, upstream=upstream)
    message = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return UpstreamFailure(Kind.TRANSPORT, message, endpoint=endpoint, upstream=upstream)


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or its first limit+1 bytes when it is longer (see too_large)."""
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            break
    return bytes(buf)


def too_large(
    body: bytes,
    limit: int,
    *,
    endpoint: str,
    status: int | None = None,
    upstream: str = "Sora",
) -> UpstreamFailure | None:
    """MALFORMED when read_capped stopped at the limit, else None."""
    if len(body) <= limit:
        return None
    size = f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit} bytes"
    return UpstreamFailure(
        Kind.MALFORMED,
        f"response larger than {size}",
        status=status,
        endpoint=endpoint,
        upstream=upstream,
    )
