"""The one way a secret is shown or logged: tokens, passwords in URLs, account emails."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask(secret: str | None) -> str:
    """A secret as any answer or log may show it: all but the last 4 characters hidden."""
    if not secret:
        return ""
    return "…" + secret[-4:] if len(secret) > 8 else "…"


def mask_email(email: str | None) -> str:
    """An account email safe for listings and logs: the first two letters and the domain."""
    if not email:
        return ""
    local, at, domain = email.partition("@")
    return f"{local[: 2 if len(local) > 4 else 1]}***{at}{domain}"


def mask_proxy(proxy: str | None) -> str:
    """A proxy URL safe to show: the password (if any) masked like every other secret."""
    if not proxy:
        return ""
    try:
        parts = urlsplit(proxy)
        password = parts.password
    except ValueError:
        return mask(proxy)
    if not password:
        return proxy
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{mask(password)}@{host}"))
