"""This server's own result links used as request inputs: read from the media cache, not fetched.

A user animates the image they just made by sending its link back. Fetching it over the network
would be refused by the URL guard (the server's own address is rarely public) and would be a
pointless round trip; the bytes are already on our disk.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from yarl import URL

from .errors import BadRequestError, PayloadTooLargeError
from .media import MediaCache, display_url
from .media_budget import size_text

_PREFIX = "/tmp/"


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.raw_host or "").lower(), url.port)


class OwnLinks:
    """The origins one request's own links may carry: server.public_url (its path too, when it is
    mounted under one) and the Host the request came to."""

    def __init__(self, media: MediaCache, public_base: str, request_base: str | None) -> None:
        self._media = media
        self._bases: list[tuple[tuple[str, str, int | None], str]] = []
        for base in (public_base, request_base):
            try:
                parsed = URL(base) if base else None
            except (ValueError, TypeError):
                parsed = None
            if parsed is not None and parsed.absolute:
                self._bases.append((_origin(parsed), parsed.path.rstrip("/") + _PREFIX))

    def name_in(self, url: str) -> str | None:
        """The file name of a link to this server's /tmp/, as sent (unchecked); None otherwise."""
        try:
            parsed = URL(url)
            origin = _origin(parsed)
        except (ValueError, TypeError):
            return None
        # raw_path: yarl decodes %2F in .path, and a name with a slash must stay visible as one.
        raw = parsed.raw_path
        for own, prefix in self._bases:
            if origin == own and raw.startswith(prefix):
                return unquote(raw[len(prefix) :])
        return None

    async def read(self, url: str, *, kind: str, param: str, max_bytes: int) -> bytes | None:
        """The cached file a link of ours names; None for any other URL (the guard fetches it)."""
        name = self.name_in(url)
        if name is None:
            return None
        shown = display_url(url)
        # The cache accepts only names it makes (hex + known extension), so no traversal gets by.
        cached = self._media.lookup(name)
        if cached is None:
            raise BadRequestError(
                f"{param}: the link {shown} has expired or names no file of this server "
                "(result links last storage.media_ttl seconds); make the "
                f"{kind} again and use its new link",
                param=param,
                code="media_expired",
            )
        if cached.size > max_bytes:
            raise PayloadTooLargeError(
                f"{param}: the {kind} at {shown} is {size_text(cached.size)}, over the "
                f"{size_text(max_bytes)} limit",
                param=param,
            )
        try:
            return await asyncio.to_thread(cached.path.read_bytes)
        except FileNotFoundError:
            # Pruned between the lookup and the read.
            raise BadRequestError(
                f"{param}: the link {shown} has expired; make the {kind} again",
                param=param,
                code="media_expired",
            ) from None
