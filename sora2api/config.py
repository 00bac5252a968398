"""The config contract: one frozen dataclass per config.toml table, env overrides, strict errors."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .config_rules import FORMATS, RANGES


class ConfigError(Exception):
    """A config problem, phrased as one line that names the file and the key."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Base for media links; empty means http://host:port.
    public_url: str = ""
    # Seconds a stream may stay silent before a ": keep-alive" comment goes out.
    keepalive_interval: float = 15.0
    # Seconds shutdown waits for open requests before closing them.
    shutdown_timeout: float = 10.0
    # Python logging level name.
    log_level: str = "INFO"
    # Comma-separated addresses of reverse proxies (nginx) whose X-Forwarded-For is believed; the
    # client address then comes from that header (login rate limit, request log).
    trusted_proxies: str = ""


@dataclass(frozen=True, slots=True)
class AuthConfig:
    api_key: str = "han1234"
    admin_username: str = "admin"
    admin_password: str = "admin"
    # Admin sessions expire after this many hours.
    session_ttl_hours: float = 24.0
    # Failed logins allowed per client address per minute.
    login_attempts_per_minute: int = 10


@dataclass(frozen=True, slots=True)
class StorageConfig:
    db_path: str = "data/sora2api.db"
    media_dir: str = "data/tmp"
    # Seconds a cached media file stays downloadable.
    media_ttl: int = 3600
    # Largest single file the cache will download, in MB.
    media_max_mb: int = 2048
    # Total size of the media folder in MB (0: no cap), and MB a download must leave free on the
    # folder's disk (0: no floor): a download that would break either fails with "cache full",
    # so the cache never fills the disk SQLite writes to.
    media_cache_max_mb: int = 10240
    media_min_free_mb: int = 1024
    # Seconds between two passes of the media pruner.
    prune_interval: float = 60.0
    # Request log retention: rows kept at most, and days kept at most.
    log_max_rows: int = 20000
    log_max_days: int = 30
    # Job retention: finished jobs kept at most, and days kept at most (0: no limit). A job that
    # is not finished is never pruned.
    job_max_rows: int = 100000
    job_max_days: int = 90
    # Deleted-character records (the temporary characters of character+video jobs, characters
    # removed in the panel) kept at most, and days kept at most (0: no limit).
    character_max_rows: int = 10000
    character_max_days: int = 30


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    base_url: str = "https://sora.chatgpt.com/backend"
    session_url: str = "https://sora.chatgpt.com/api/auth/session"
    oauth_url: str = "https://auth.openai.com/oauth/token"
    poll_interval: float = 2.5
    image_timeout: float = 300.0
    video_timeout: float = 1500.0
    # Global upstream proxy: http://, https:// or socks5:// (empty: direct).
    proxy: str = ""
    # Seconds one backend call may take (connect + read of one response).
    request_timeout: float = 60.0
    # OAuth client id used for refresh tokens that did not bring their own.
    client_id: str = "app_LlGpXReQgckcGGUo2JrYvtJK"
    # Client identity headers: kept here so a blocked UA can be changed without a release.
    user_agent: str = "Sora/1.2026.007 (Android 15; 24122RKC7C; build 2600700)"
    # Watermark-free "third_party" download template; {post_id} is replaced.
    third_party_url: str = "https://oscdn2.dyysy.com/MP4/{post_id}.mp4"
    # Retries of a whole job on another token after a token-level failure.
    max_token_switches: int = 3


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    allow_private_urls: bool = False
    max_body_mb: int = 64
    # Largest image or video a user-supplied URL may deliver, in MB, and seconds to fetch it.
    fetch_max_mb: int = 64
    fetch_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    # "json" (the README's result string) or "markdown" (link + <video> tag for chat UIs).
    content_format: str = "json"
    # Streamed progress in reasoning_content: "object" (the README's {stage, status, ...}) or
    # "text" (one human line per step, for LiteLLM and chat UIs that take only a string).
    progress_format: str = "object"
    # Seconds a job waits for a free token before it fails with the reason.
    queue_timeout: float = 120.0
    watermark_free: bool = False
    # "third_party" (upstream.third_party_url) or "custom" (POST {custom_url}/get-sora-link).
    watermark_parse_method: str = "third_party"
    watermark_custom_url: str = ""
    watermark_custom_token: str = ""
    # When the watermark-free chain fails: true serves the normal video, false fails the job.
    watermark_fallback: bool = True


@dataclass(frozen=True, slots=True)
class PoolConfig:
    # Default per-token concurrency; each token may override it.
    image_concurrency: int = 1
    video_concurrency: int = 3
    # Unexplained consecutive errors before a token is disabled (0: never).
    error_ban_threshold: int = 3
    refresh_enabled: bool = True
    # Refresh access tokens that expire within this many seconds.
    refresh_window: float = 86400.0
    # Seconds between two passes of the refresh task.
    refresh_interval: float = 600.0
    # First cooldown after a 429 / heavy load, doubled per repeat up to cooldown_max.
    cooldown_base: float = 60.0
    cooldown_max: float = 3600.0
    # Tokens tested at once by "test all".
    test_concurrency: int = 4


@dataclass(frozen=True, slots=True)
class ProvidersConfig:
    # The base URL a Seedance account gets when it is added without one (as the Ark SDK takes it).
    seedance_base_url: str = "https://ark.cn-beijing.volces.com/api/v3"
    # The base URL a Gemini account gets when it is added without one: the bare host, as
    # google-genai takes it (the client adds /v1).
    gemini_base_url: str = "https://generativelanguage.googleapis.com"


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    # Seconds before the first retry of a failed delivery; each next wait is backoff_factor times
    # longer (5, 30, 180, ... s), capped at max_retry_interval, until max_age after the event.
    first_retry: float = 5.0
    backoff_factor: float = 6.0
    max_retry_interval: float = 21600.0
    max_age: float = 86400.0
    # Seconds one delivery may take (connect, send, read the answer); bytes of the answer read.
    timeout: float = 15.0
    max_response_kb: int = 64
    # Deliveries sent at once (one at a time per delivery and per URL).
    concurrency: int = 4
    # Days a finished (delivered or given-up) delivery stays listed.
    keep_days: int = 30


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    # Bearer token of GET /metrics (Prometheus); empty: the route answers 404 as if absent.
    token: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    providers: ProvidersConfig = field(default_factory=ProvidersConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Directory relative paths are resolved against (the config file's folder).
    base_dir: str = "."
    # (section, key) pairs set by SORA2API_* environment variables: the panel shows them locked.
    env_overrides: frozenset[tuple[str, str]] = frozenset()

    @property
    def public_base(self) -> str:
        """The base URL media links are built on."""
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.server.port}"

    def path(self, value: str) -> Path:
        """Resolve a storage path against the config file's directory."""
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def replace(self, **sections: Any) -> Config:
        """A copy with some sections (or fields of sections, given as dicts) replaced."""
        changes: dict[str, Any] = {}
        for name, value in sections.items():
            if isinstance(value, Mapping):
                value = dataclasses.replace(getattr(self, name), **value)
            changes[name] = value
        return dataclasses.replace(self, **changes)


SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "auth": AuthConfig,
    "storage": StorageConfig,
    "upstream": UpstreamConfig,
    "security": SecurityConfig,
    "generation": GenerationConfig,
    "pool": PoolConfig,
    "providers": ProvidersConfig,
    "webhooks": WebhooksConfig,
    "metrics": MetricsConfig,
}

_ENV_PREFIX = "SORA2API_"
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("generation", "content_format"): ("json", "markdown"),
    ("generation", "progress_format"): ("object", "text"),
    ("generation", "watermark_parse_method"): ("third_party", "custom"),
}


def field_types(section: str) -> dict[str, type[Any]]:
    """Field name → Python type of one config section."""
    cls = SECTIONS[section]
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def coerce(section: str, key: str, value: Any, where: str) -> Any:
    """Check (and for env strings, convert) one value against its field type."""
    expected = field_types(section)[key]
    # The panel names a setting the way it sends it; files and variables name the table.
    name = f"{section}.{key}" if where == "setting" else f"{where}: [{section}] {key}"
    if isinstance(value, str) and where.startswith("env"):
        value = _parse_env(value, expected, name)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:  # an integer beyond any float (TOML integers are unbounded)
                value = math.inf
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{name} must be {_type_word(expected)}, got {value!r}")
    if expected in (int, float):
        lo, hi = RANGES[(section, key)]
        # NaN fails both comparisons, so it is refused too.
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be from {lo:g} to {hi:g}, got {value!r}")
    choices = _CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    check = FORMATS.get((section, key))
    problem = check(value) if check is not None and isinstance(value, str) else None
    if problem is not None:
        # Never echo the value: it may be a credential.
        raise ConfigError(f"{name} {problem}")
    return value


def check_format(section: str, key: str) -> Callable[[str], str | None] | None:
    """The format check of a string field (None if it has none)."""
    return FORMATS.get((section, key))


def choices(section: str, key: str) -> tuple[str, ...] | None:
    """The allowed values of a field that has a fixed set, else None."""
    return _CHOICES.get((section, key))


def _type_word(t: type[Any]) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[t]


def _parse_env(raw: str, expected: type[Any], name: str) -> Any:
    try:
        if expected is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if expected is int:
            return int(raw)
        if expected is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {_type_word(expected)}, got {raw!r}") from None
    return raw


def build_config(
    data: Mapping[str, Any],
    *,
    source: str,
    env: Mapping[str, str] | None = None,
    base_dir: str = ".",
) -> Config:
    """Validate parsed TOML data plus environment overrides into a Config."""
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for section, table in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}]")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        known = field_types(section)
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown key [{section}] {key}")
            values[section][key] = coerce(section, key, value, source)
    overrides: set[tuple[str, str]] = set()
    for var, raw in (env or {}).items():
        if not var.startswith(_ENV_PREFIX):
            continue
        rest = var[len(_ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS or key not in field_types(section):
            raise ConfigError(f"environment: unknown variable {var}")
        values[section][key] = coerce(section, key, raw, f"environment {var}")
        overrides.add((section, key))
    built = {name: SECTIONS[name](**vals) for name, vals in values.items()}
    config = Config(**built, base_dir=base_dir, env_overrides=frozenset(overrides))
    problem = check_relations(config)
    if problem is not None:
        raise ConfigError(f"{source}: [{problem[0]}] {problem[1]} {problem[2]}")
    return config


def check_relations(config: Config) -> tuple[str, str, str] | None:
    """A rule between two fields that `config` breaks, as (section, key, why), else None."""
    pool = config.pool
    if pool.cooldown_max < pool.cooldown_base:
        return (
            "pool",
            "cooldown_max",
            f"must be at least cooldown_base ({pool.cooldown_base:g}), got {pool.cooldown_max:g}",
        )
    return None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read config.toml (and SORA2API_* variables); every problem is one ConfigError line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: TOML syntax error: {exc}") from None
    return build_config(
        data,
        source=str(p),
        env=os.environ if env is None else env,
        base_dir=str(p.resolve().parent),
    )
