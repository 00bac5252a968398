"""The range of every number and the format of every string in the config (one rule each)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h", "socks4")
_DAY = 86400.0
# The allowed range of every number, wherever it is set (config.toml, environment, panel). Lower
# bounds keep the service from hammering the upstream or the disk (a poll interval of 0 sends
# thousands of polls a second); upper bounds keep timers meaningful (1e9 s freezes a watcher).
# The smallest values are the ones the test suite runs at against the simulator.
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("server", "port"): (0, 65535),
    ("server", "keepalive_interval"): (0.01, 300),
    ("server", "shutdown_timeout"): (0, 3600),
    ("auth", "session_ttl_hours"): (0.0001, 8760),
    ("auth", "login_attempts_per_minute"): (1, 10_000),
    ("storage", "media_ttl"): (60, 30 * _DAY),
    ("storage", "media_max_mb"): (0, 1_048_576),
    ("storage", "media_cache_max_mb"): (0, 100_000_000),
    ("storage", "job_max_rows"): (0, 100_000_000),
    ("storage", "job_max_days"): (0, 36500),
    ("storage", "character_max_rows"): (0, 100_000_000),
    ("storage", "character_max_days"): (0, 36500),
    ("storage", "media_min_free_mb"): (0, 100_000_000),
    ("storage", "prune_interval"): (0.05, _DAY),
    ("storage", "log_max_rows"): (1, 100_000_000),
    ("storage", "log_max_days"): (1, 3650),
    ("upstream", "poll_interval"): (0.05, 60),
    ("upstream", "image_timeout"): (1, _DAY),
    ("upstream", "video_timeout"): (1, _DAY),
    ("upstream", "request_timeout"): (0.1, 3600),
    ("upstream", "max_token_switches"): (0, 100),
    ("security", "max_body_mb"): (1, 4096),
    ("security", "fetch_max_mb"): (1, 4096),
    ("security", "fetch_timeout"): (0.1, 3600),
    ("generation", "queue_timeout"): (0.1, _DAY),
    ("pool", "image_concurrency"): (1, 10_000),
    ("pool", "video_concurrency"): (1, 10_000),
    ("pool", "error_ban_threshold"): (0, 1000),
    ("pool", "refresh_window"): (60, 30 * _DAY),
    ("pool", "refresh_interval"): (0.05, _DAY),
    ("pool", "cooldown_base"): (0.05, _DAY),
    ("pool", "cooldown_max"): (0.05, 30 * _DAY),
    ("pool", "test_concurrency"): (1, 100),
    ("webhooks", "first_retry"): (0.01, _DAY),
    ("webhooks", "backoff_factor"): (1, 100),
    ("webhooks", "max_retry_interval"): (0.01, 30 * _DAY),
    ("webhooks", "max_age"): (0.01, 30 * _DAY),
    ("webhooks", "timeout"): (0.1, 600),
    ("webhooks", "max_response_kb"): (1, 10_240),
    ("webhooks", "concurrency"): (1, 100),
    ("webhooks", "keep_days"): (1, 3650),
}
_LABEL = re.compile(r"[\w-]{1,63}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _printable(value: str, limit: int, *, empty: bool) -> str | None:
    """Why a free-text value is refused (control characters end up in headers and logs)."""
    if not value and not empty:
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters (CR, LF, NUL, ...)"
    return None


def _token(value: str, limit: int, *, empty: bool = False) -> str | None:
    problem = _printable(value, limit, empty=empty)
    if problem is None and any(c.isspace() for c in value):
        return "must not contain spaces"
    return problem


def host_problem(host: str) -> str | None:
    """Why a URL's host is not a usable host name or IP address (None: it is)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "is not a host name (dot-separated labels of 1 to 63 letters, digits, - or _)"
    try:
        host.encode("idna")  # what the HTTP client does with it: a 500 there otherwise
    except UnicodeError:
        return "is not a host name DNS can carry"
    return None


def _url(value: str, *, empty: bool, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why a URL is refused: scheme, host, port; no spaces or control characters."""
    if not value:
        return None if empty else "must not be empty"
    words = "://, ".join(schemes) + "://"
    want = f"must start with {words}" + (" (or be empty)" if empty else "")
    if _token(value, 2048) is not None:
        return f"{want}, without spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        return f"{want} and a valid port"
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return f"{want} and name a host"
    problem = host_problem(parts.hostname)
    return None if problem is None else f"{want} and name a valid host (the host {problem})"


def _public_url(value: str) -> str | None:
    problem = _url(value, empty=True)
    if problem is None and value and (urlsplit(value).query or urlsplit(value).fragment):
        return "must be a base URL without ?query or #fragment"
    return problem


def _third_party(value: str) -> str | None:
    problem = _url(value, empty=False)
    if problem is None and "{post_id}" not in value:
        return "must contain {post_id}, where the post id goes"
    return problem


def _proxy(value: str) -> str | None:
    problem = _url(value, empty=True, schemes=_PROXY_SCHEMES)
    if problem is None and value and urlsplit(value).path not in ("", "/"):
        return "must be scheme://[user:password@]host:port without a path"
    return problem


def _addresses(value: str) -> str | None:
    for item in (v.strip() for v in value.split(",") if v.strip()):
        try:
            ipaddress.ip_address(item)
        except ValueError:
            return f"must be comma-separated IP addresses, got {item!r}"
    return None


def _log_level(value: str) -> str | None:
    return None if value.upper() in _LOG_LEVELS else f"must be one of {', '.join(_LOG_LEVELS)}"


# The format of every string, as a function returning why a value is refused (None: accepted).
FORMATS: dict[tuple[str, str], Callable[[str], str | None]] = {
    ("server", "host"): lambda v: _token(v, 255),
    ("server", "public_url"): _public_url,
    ("server", "log_level"): _log_level,
    ("server", "trusted_proxies"): _addresses,
    ("auth", "api_key"): lambda v: _token(v, 256),
    ("auth", "admin_username"): lambda v: _printable(v, 64, empty=False),
    ("auth", "admin_password"): lambda v: _printable(v, 1024, empty=False),
    ("storage", "db_path"): lambda v: _printable(v, 4096, empty=False),
    ("storage", "media_dir"): lambda v: _printable(v, 4096, empty=False),
    ("upstream", "base_url"): lambda v: _url(v, empty=False),
    ("upstream", "session_url"): lambda v: _url(v, empty=False),
    ("upstream", "oauth_url"): lambda v: _url(v, empty=False),
    ("upstream", "proxy"): _proxy,
    ("upstream", "client_id"): lambda v: _token(v, 256),
    ("upstream", "user_agent"): lambda v: _printable(v, 512, empty=False),
    ("upstream", "third_party_url"): _third_party,
    ("generation", "content_format"): lambda v: None,  # _CHOICES
    ("generation", "progress_format"): lambda v: None,  # _CHOICES
    ("generation", "watermark_parse_method"): lambda v: None,  # _CHOICES
    ("generation", "watermark_custom_url"): lambda v: _url(v, empty=True),
    ("generation", "watermark_custom_token"): lambda v: _token(v, 1024, empty=True),
    ("providers", "seedance_base_url"): lambda v: _url(v, empty=False),
    ("metrics", "token"): lambda v: _token(v, 256, empty=True),
    ("providers", "gemini_base_url"): lambda v: _url(v, empty=False),
}
