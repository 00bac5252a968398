"""Pure, I/O-free credential helpers: classification, import parsing, input checks, values."""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from .config_rules import host_problem
from .errors import ApiError, BadRequestError
from .jwt import decode_jwt
from .mask import mask_proxy


class _Unset:
    """Marks an option the caller did not give: new rows take the default, updates keep theirs."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
OPTION_FIELDS = (
    "remark",
    "proxy",
    "image_enabled",
    "video_enabled",
    "image_concurrency",
    "video_concurrency",
)
_USERNAME_TRIES = 5
# Lengths of the free-text token fields. Real access and session tokens are a few KB (a session
# cookie is cut into 4 KB chunks by browsers); OAuth client ids are short; e-mail is RFC 5321's
# path limit. Longer values are pasting mistakes or abuse, and would reach upstream headers.
MAX_CREDENTIAL = 16_384
MAX_CLIENT_ID = 256
MAX_EMAIL = 254
MAX_PROXY = 2048
MAX_REMARK = 500
MAX_INVITE_CODE = 100


def check_proxy(value: Any, param: str = "proxy") -> str:
    """A per-token proxy URL: empty, or http/https/socks5/socks5h://host:port."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"'{param}' must be a string (a proxy URL or empty)", param=param)
    value = value.strip()
    if not value:
        return ""
    if len(value) > MAX_PROXY:
        raise BadRequestError(f"'{param}' is longer than {MAX_PROXY} characters", param=param)
    if any(ord(c) <= 32 or ord(c) == 127 for c in value):
        # urlsplit drops tabs and newlines silently; the stored value would still hold them.
        raise BadRequestError(
            f"'{param}' must not contain spaces or control characters", param=param
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise BadRequestError(
            f"'{param}' is not a valid URL: {mask_proxy(value)!r}", param=param
        ) from None
    if parts.scheme.lower() not in PROXY_SCHEMES:
        raise BadRequestError(
            f"'{param}' must start with http://, https://, socks5:// or socks5h://, "
            f"got {mask_proxy(value)!r}",
            param=param,
        )
    if not parts.hostname:
        raise BadRequestError(f"'{param}' has no host: {mask_proxy(value)!r}", param=param)
    problem = host_problem(parts.hostname)
    if problem is not None:
        raise BadRequestError(f"'{param}': the host {problem}", param=param)
    del port  # parsed only to reject a non-numeric port
    return str(value)


_MAX_LIMIT = 10_000  # far above any account's real concurrency, and well inside SQLite's INTEGER


def check_limit(value: Any, param: str) -> int | None:
    """A per-token concurrency limit: an int >= 0 (0: no limit) or null (the config default)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_LIMIT:
        raise BadRequestError(
            f"'{param}' must be an integer from 0 to {_MAX_LIMIT} (0 means no limit) or null "
            f"(use the default), got {value!r}",
            param=param,
        )
    return value


def check_bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequestError(f"'{param}' must be true or false, got {value!r}", param=param)
    return value


def check_remark(value: Any, param: str = "remark") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"'{param}' must be a string", param=param)
    if len(value) > MAX_REMARK:
        raise BadRequestError(f"'{param}' is longer than {MAX_REMARK} characters", param=param)
    return value


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the admin-set fields of a token; unknown names are refused."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is UNSET:
            continue
        if name == "remark":
            out[name] = check_remark(value)
        elif name == "proxy":
            out[name] = check_proxy(value)
        elif name in ("image_enabled", "video_enabled"):
            out[name] = int(check_bool(value, name))
        elif name in ("image_concurrency", "video_concurrency"):
            out[name] = check_limit(value, name)
        else:
            raise BadRequestError(
                f"Unknown token field '{name}'; editable: {', '.join(OPTION_FIELDS)}", param=name
            )
    return out


def _b64_json(segment: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None


_PREFIX_RE = re.compile(r"^(at|st|rt)\s*[:=]\s*", re.IGNORECASE)
_OPAQUE_RE = re.compile(r"^[A-Za-z0-9_\-~+/=]+$")


def classify_credential(text: str) -> tuple[str, str]:
    """(kind, credential) for one pasted credential; ValueError says why it is not recognised.

    Rules, first match wins:
      1. An explicit prefix `at:`, `st:` or `rt:` (also `at=` ...) forces the kind.
      2. Three dot-separated parts whose payload is base64url JSON: an access token (JWT).
      3. A JWE (what next-auth's `__Secure-next-auth.session-token` cookie holds): five parts,
         or a first part that decodes to a header with "enc", or an empty second part ("..").
         That is a session token.
      4. `rt_...` (current OpenAI refresh tokens) or `v1.…` (older Auth0 ones): a refresh token.
      5. No dots at all: 200+ characters is a session token (a long opaque cookie value),
         20-199 characters a refresh token; anything shorter is refused.
      6. Everything else (three parts that are not a JWT, other dotted strings) is refused.
    """
    raw = text.strip()
    forced: str | None = None
    m = _PREFIX_RE.match(raw)
    if m:
        forced = m.group(1).lower()
        raw = raw[m.end() :].strip()
    if not raw:
        raise ValueError("empty credential")
    if any(c.isspace() for c in raw):
        raise ValueError("a credential cannot contain spaces")
    if forced:
        return forced, raw
    parts = raw.split(".")
    if len(parts) == 3 and all(parts):
        try:
            decode_jwt(raw)
        except ValueError:
            pass
        else:
            return "at", raw
    head = _b64_json(parts[0]) if len(parts) > 1 else None
    if (
        len(parts) == 5
        or (isinstance(head, dict) and "enc" in head)
        or (len(parts) >= 3 and not parts[1])
    ):
        return "st", raw
    if raw.startswith("rt_") or raw.startswith("v1."):
        return "rt", raw
    if len(parts) == 1 and _OPAQUE_RE.match(raw):
        if len(raw) >= 200:
            return "st", raw
        if len(raw) >= 20:
            return "rt", raw
        raise ValueError(f"too short to be a credential ({len(raw)} characters)")
    if len(parts) == 3:
        raise ValueError(
            "three dot-separated parts but not a JWT (the payload is not base64url JSON)"
        )
    raise ValueError("not an access token (JWT), session token (JWE) or refresh token (rt_…)")


def unmistakable_kind(cred: str) -> str | None:
    """ "st" for a JWE, "rt" for rt_…, else None: shapes no access token can have."""
    parts = cred.split(".")
    head = _b64_json(parts[0]) if len(parts) > 1 else None
    if len(parts) == 5 or (isinstance(head, dict) and "enc" in head):
        return "st"
    if cred.startswith("rt_") and len(parts) == 1:
        return "rt"
    return None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def quota_values(info: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The quota columns from nf/check's rate_limit_and_credit_balance."""
    remaining = as_number(info.get("estimated_num_videos_remaining"))
    resets = as_number(info.get("access_resets_in_seconds"))
    rem = None if remaining is None else max(0, int(remaining))
    if info.get("rate_limit_reached") is True:
        rem = 0
    resets_at = now + resets if resets is not None and resets > 0 else None
    if rem == 0 and resets_at is None:
        resets_at = now + 3600.0  # the reset time is unknown: look again in an hour
    return {"quota_remaining": rem, "quota_resets_at": resets_at}


def username_candidates(email: str | None, n: int = _USERNAME_TRIES) -> list[str]:
    """Usernames to offer for an account without one: the e-mail's local part plus digits."""
    local = re.sub(r"[^a-z0-9]", "", (email or "").split("@")[0].lower())[:18]
    if len(local) < 3:
        local = (local + "sora")[:18]
    return [f"{local}{secrets.randbelow(900000) + 100000}" for _ in range(n)]


def clock_time(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(value)) if value else "?"


@dataclass(slots=True)
class ImportItem:
    """One line (text) or object (JSON) of an import, parsed but not yet sent anywhere."""

    line: int
    kind: str = ""
    at: str | None = None
    st: str | None = None
    rt: str | None = None
    client_id: str | None = None
    email: str | None = None
    active: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # Another provider's account: its API key is `at`, with the base URL and model restriction.
    provider: str = "sora"
    base_url: str = ""
    models: list[str] | None = None

    @property
    def credential(self) -> str:
        if self.provider != "sora":
            return f"{self.provider}|{self.at}|{self.base_url}"
        return self.at or self.st or self.rt or ""


# `provider|key|base_url[|model,model...]`: one account of a provider other than Sora.
_PROVIDER_LINE_RE = re.compile(r"^(openai|seedance|gemini)\|", re.IGNORECASE)


def _provider_line(item: ImportItem, line: str) -> None:
    """Fill `item` from a provider line; a malformed one becomes its error."""
    parts = [p.strip() for p in line.split("|")]
    if len(parts) not in (2, 3, 4) or not parts[1]:
        item.error = "a provider line is provider|key|base_url (optionally |model,model)"
        return
    item.provider, item.at, item.kind = parts[0].lower(), parts[1], "key"
    item.base_url = parts[2] if len(parts) > 2 else ""
    if len(parts) == 4 and parts[3]:
        item.models = [m.strip() for m in parts[3].split(",") if m.strip()]
    if any(ord(c) < 33 or ord(c) == 127 for c in item.at):
        item.error = "the key contains a space or a control character"


def parse_text(text: str) -> list[ImportItem]:
    """One credential per line (see classify_credential); blank lines and '#' comments skipped."""
    items: list[ImportItem] = []
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        item = ImportItem(line=n)
        if _PROVIDER_LINE_RE.match(stripped):
            _provider_line(item, stripped)
            items.append(item)
            continue
        try:
            kind, cred = classify_credential(stripped)
        except ValueError as exc:
            item.error = f"Unrecognised credential: {exc}"
        else:
            item.kind = kind
            setattr(item, kind, cred)
        items.append(item)
    return items


def check_credential_text(value: str, name: str, limit: int = MAX_CREDENTIAL) -> str:
    """A pasted credential, stripped; a control character inside is a 400 (it would reach an
    HTTP header or form, where CR/LF split it and NUL breaks it). The value is never echoed."""
    value = value.strip()
    if len(value) > limit:
        raise BadRequestError(
            f"'{name}' is {len(value)} characters long; at most {limit} are accepted", param=name
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequestError(
            f"'{name}' contains a control character (CR, LF, NUL, ...); paste the token alone",
            param=name,
        )
    return value


def check_client_id(value: str, name: str = "client_id") -> str:
    """An OAuth client id: short, no spaces (it is sent in the refresh request's form)."""
    value = check_credential_text(value, name, MAX_CLIENT_ID)
    if any(c.isspace() for c in value):
        raise BadRequestError(f"'{name}' must not contain spaces", param=name)
    return value


_TEXT_LIMITS = {"client_id": MAX_CLIENT_ID, "email": MAX_EMAIL}


def _opt_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"'{name}' must be a string", param=name)
    if name == "client_id":
        return check_client_id(value) or None
    return check_credential_text(value, name, _TEXT_LIMITS.get(name, MAX_CREDENTIAL)) or None


def parse_json(data: Any) -> list[ImportItem]:
    """A list of objects in the reference's export format; a bad object is an error item."""
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(f"Import data is not valid JSON: {exc}", param="data") from None
    if isinstance(data, dict) and isinstance(data.get("tokens"), list):
        data = data["tokens"]
    if not isinstance(data, list):
        raise BadRequestError("JSON import data must be a list of token objects", param="data")
    items: list[ImportItem] = []
    for n, obj in enumerate(data, start=1):
        item = ImportItem(line=n)
        items.append(item)
        if not isinstance(obj, dict):
            item.error = "not a JSON object"
            continue
        try:
            item.at = _opt_str(obj, "access_token") or _opt_str(obj, "token")
            item.st = _opt_str(obj, "session_token") or _opt_str(obj, "st")
            item.rt = _opt_str(obj, "refresh_token") or _opt_str(obj, "rt")
            item.client_id = _opt_str(obj, "client_id")
            item.email = _opt_str(obj, "email")
            active = obj.get("is_active", True)
            item.active = bool(active) if isinstance(active, bool | int) else True
            opts: dict[str, Any] = {}
            for name in ("image_enabled", "video_enabled"):
                if obj.get(name) is not None:
                    value = obj[name]
                    opts[name] = bool(value) if isinstance(value, int) else value
            for name in ("image_concurrency", "video_concurrency"):
                if name in obj:
                    value = obj[name]
                    # The reference writes -1 for "no own limit": that is our null (the default).
                    opts[name] = (
                        None
                        if isinstance(value, int) and not isinstance(value, bool) and value < 0
                        else value
                    )
            if obj.get("remark") is not None:
                opts["remark"] = obj["remark"]
            proxy = obj.get("proxy", obj.get("proxy_url"))
            if proxy is not None:
                opts["proxy"] = proxy
            item.options = check_options(opts)
            _provider_fields(item, obj)
        except ApiError as exc:
            item.error = exc.message
            continue
        if item.provider != "sora":
            item.kind = "key" if item.at else ""
            if not item.kind:
                item.error = f"no key (token) for the {item.provider} account"
            continue
        item.kind = "at" if item.at else "st" if item.st else "rt" if item.rt else ""
        if not item.kind:
            item.error = "no access_token, session_token or refresh_token"
    return items


def _provider_fields(item: ImportItem, obj: Mapping[str, Any]) -> None:
    """provider, base_url and models of a JSON import object (a Sora token has none)."""
    provider = obj.get("provider") or "sora"
    if not isinstance(provider, str):
        raise BadRequestError("'provider' must be a string", param="provider")
    item.provider = provider.strip().lower()
    if item.provider == "sora":
        return
    item.at = item.at or _opt_str(obj, "api_key")
    item.base_url = _opt_str(obj, "base_url") or ""
    models = obj.get("models")
    if models is not None and models != "":
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise BadRequestError("'models' must be a list of model names", param="models")
        item.models = [m.strip() for m in models if m.strip()]
