"""A seeded generator of requests that every route must refuse (or, for reads, answer) cleanly.

Every request that could change something is invalid by construction: a nonexistent or malformed
path id, a missing or wrong credential, or a body with at least one field holding a value that
field never accepts. So after the run nothing stored may differ and the simulator may have seen no
create and no upload. Reads (GET) may answer 200: they are fuzzed through their query strings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from sora2api.routes import ROUTES

from .fuzz_values import (
    BAD_INT_IDS,
    BAD_JOB_IDS,
    BAD_NAMES,
    BAD_STRINGS,
    CHARACTER_BAD,
    CHARACTER_BASE,
    CHAT_BAD,
    CHAT_BASE,
    CONVERT_BAD,
    EDIT_BAD,
    HUGE,
    IMAGE_BAD,
    IMAGE_BASE,
    JUNK_KEYS,
    KEY_BAD,
    KEY_BASE,
    MP4_URL,
    PNG_B64,
    QUERY_NAMES,
    QUERY_VALUES,
    SETTING_BAD_FORMAT,
    SETTING_BAD_RELATION,
    SETTING_VALID,
    SETTING_WRONG,
    TOKEN_BAD,
    VALID_BODIES,
    VIDEO_BAD,
    VIDEO_BASE,
    VIDEO_FORM_BAD,
    WRONG_TYPES,
)


@dataclass(frozen=True, slots=True)
class Case:
    """One request: who sends it, where, and the exact bytes."""

    method: str
    path: str
    auth: str  # none | bogus | key | admin
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        body = (self.body or b"")[:120]
        return f"{self.method} {self.path[:160]} auth={self.auth} body={body!r}"


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _mutated(rng: random.Random, base: dict[str, Any], bad: dict[str, list[Any]]) -> Any:
    """The base body with one to three fields set to values they must refuse."""
    body = dict(base)
    # Mostly one refused field, so a later field's check is not hidden behind an earlier one's.
    k = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
    for name in rng.sample(sorted(bad), k=min(len(bad), k)):
        body[name] = rng.choice(bad[name])
    return body


def _garbage(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    """A body no JSON route can take: not JSON, not an object, not UTF-8, or a broken form."""
    choice = rng.randrange(12)
    json_ct = {"Content-Type": "application/json"}
    if choice == 0:
        return b"", json_ct
    if choice == 1:
        return b'{"model": "sora-image", "messages": [', json_ct
    if choice == 2:
        return _json(rng.choice([[1, 2], "x", 5, None, True, 1e308])), json_ct
    if choice == 3:
        return b"\xff\xfe\x00garbage", json_ct
    if choice == 4:
        return b'{"a": "\\ud800"}', json_ct  # a lone surrogate escape
    if choice == 5:
        return b"[" * 5000 + b"]" * 5000, json_ct  # deep nesting
    if choice == 6:
        return b"--xyz\r\nnot a part\r\n", {"Content-Type": "multipart/form-data; boundary=xyz"}
    if choice == 7:
        return b"anything", {"Content-Type": "multipart/form-data"}  # no boundary
    if choice == 8:
        part = (
            b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n'
            b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nx\r\n--b--\r\n"
        )
        return part, {"Content-Type": "multipart/form-data; boundary=b"}
    if choice == 9:
        return b"a=%ZZ&b=%00&seconds=%C2%B2", {"Content-Type": "application/x-www-form-urlencoded"}
    if choice == 10:
        return b"model=sora-2&prompt=x", {"Content-Type": "text/plain"}
    return _json({"\u00b2": HUGE[:100], "": None, "x" * 300: [{}] * 50}), json_ct


def _random_json(rng: random.Random, depth: int, *, top: bool = False) -> Any:
    """A random JSON value (an object when `top`) whose keys are never a real field name."""
    if top or (depth > 0 and rng.random() < 0.4):
        return {
            rng.choice(JUNK_KEYS): _random_json(rng, depth - 1) for _ in range(rng.randint(1, 4))
        }
    if depth > 0 and rng.random() < 0.3:
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return rng.choice([*WRONG_TYPES, *BAD_STRINGS, HUGE[: rng.randrange(1, 3000)]])


def _form(rng: random.Random, base: dict[str, Any], bad: dict[str, list[str]]) -> bytes:
    """A multipart body: the base as text fields, one or two of them refused values."""
    fields = {k: str(v) for k, v in base.items()}
    for name in rng.sample(sorted(bad), k=min(len(bad), rng.randint(1, 2))):
        fields[name] = rng.choice(bad[name])
    out = b""
    for name, value in fields.items():
        out += b'--fz\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        out += value.encode() + b"\r\n"
    if rng.random() < 0.5:
        out += (
            b'--fz\r\nContent-Disposition: form-data; name="input_reference"; filename="a.png"\r\n'
        )
        out += b"Content-Type: image/png\r\n\r\n" + bytes(rng.randrange(256) for _ in range(64))
        out += b"\r\n"
    return out + b"--fz--\r\n"


_FORM_CT = {"Content-Type": "multipart/form-data; boundary=fz"}


def _fill(rng: random.Random, path: str, ids: list[str]) -> str:
    """The route's path with every {var} replaced by a refused or nonexistent value."""
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + quote(rng.choice(ids), safe="%") + out[end + 1 :]
    return out


def _query(rng: random.Random) -> str:
    pairs = [
        f"{quote(rng.choice(QUERY_NAMES))}={quote(rng.choice(QUERY_VALUES), safe='%')}"
        for _ in range(rng.randint(1, 4))
    ]
    return "?" + "&".join(pairs)


def setting_refusals(setting: dict[str, Any]) -> list[Any]:
    """Values one setting (as GET /api/admin/settings describes it) must refuse: wrong types,
    out of its range, outside its choices, or in a format it refuses."""
    key, kind = setting["key"], setting["type"]
    out: list[Any] = [*SETTING_WRONG.get(kind, []), *SETTING_BAD_RELATION.get(key, [])]
    if setting.get("range"):
        lo, hi = setting["range"]
        out += [lo - 1, hi + 1, -1e308, 1e308, -(2**63), 2**63]
        if kind == "float" and lo > 0:
            out += [0, lo / 2]
        if kind == "float":
            out += [hi * 1.5]
    if setting.get("choices"):
        first = setting["choices"][0]
        out += ["", first.upper(), first + " ", "nope"]
    elif kind == "str":
        out += SETTING_BAD_FORMAT[key]
    return out


def _settings_body(rng: random.Random, settings: dict[str, dict[str, Any]]) -> Any:
    """A PUT /api/admin/settings body with at least one refused value."""
    key = rng.choice([*settings, *settings, "nope.key", "upstream", "", "\u00b2.x"])
    value = rng.choice(setting_refusals(settings[key])) if key in settings else 1
    values = {key: value}
    if rng.random() < 0.3:  # beside a valid change, which must not be saved either
        values = {**SETTING_VALID, **values}
    return rng.choice([{"values": values}] * 6 + [{"values": []}, {"values": {}}, values])


def _authorised_body(
    rng: random.Random, method: str, path: str, settings: dict[str, dict[str, Any]]
) -> Any:
    """A body this (valid-auth) route must refuse, or None to send garbage instead."""
    if path == "/v1/chat/completions":
        body = _mutated(rng, CHAT_BASE, CHAT_BAD)
        if {"remix_target_id", "character_options"} & set(body) and rng.random() < 0.5:
            # Image models refuse these fields outright; on a video model with a clip attached
            # their values themselves must be refused.
            body["model"] = "sora-video-10s"
            body.setdefault("video", MP4_URL)
        return body
    if path == "/v1/videos":
        return _mutated(rng, VIDEO_BASE, VIDEO_BAD)
    if path == "/v1/images/generations":
        return _mutated(rng, IMAGE_BASE, IMAGE_BAD)
    if path == "/v1/images/edits":
        return _mutated(rng, {**IMAGE_BASE, "image": PNG_B64}, EDIT_BAD)
    if path == "/v1/videos/characters":
        return _mutated(rng, CHARACTER_BASE, CHARACTER_BAD)
    if path == "/api/tokens":
        return _mutated(rng, {"token": "x"}, TOKEN_BAD)
    if path in ("/api/tokens/st2at", "/api/tokens/rt2at"):
        name = "st" if "st2at" in path else "rt"
        fields = [name, "proxy"] + (["client_id"] if name == "rt" else [])
        bad = {f: CONVERT_BAD[f] for f in fields}
        return (
            _mutated(rng, {name: "x" * 30}, bad)
            if rng.random() < 0.5
            else {name: rng.choice(CONVERT_BAD[name])}
        )
    if path == "/api/tokens/import":
        return rng.choice([{"data": 5}, {"format": "xml", "data": "x"}, {"tokens": 5}, {}])
    if path == "/api/tokens/test-proxy":
        return {"proxy": rng.choice(["not a proxy", "ftp://x:1", "http://", 5, [], ""])}
    if path == "/api/login":
        return rng.choice([{"username": 5}, {"username": "admin", "password": "wrong"}, {}])
    if path == "/api/admin/password":
        return {"old_password": rng.choice(["wrong", 5, None]), "new_password": rng.choice([5, ""])}
    if path == "/api/admin/keys":
        return _mutated(rng, KEY_BASE, KEY_BAD)
    if path == "/api/admin/keys/{id}" and method == "PUT":
        return rng.choice([{"enabled": "no"}, {"limits": {"rpm": -1}}, {}, {"key": "x"}])
    if path == "/api/admin/apikey":
        return {"api_key": rng.choice([5, "", [], {}, None, True])}
    if path == "/api/admin/settings":
        return _settings_body(rng, settings)
    if path.endswith("/remix"):
        return {"prompt": rng.choice([5, [], {}, "", "   ", None, True, HUGE]), "seconds": "10"}
    if path.endswith("/visibility"):
        return {"visibility": rng.choice(["secret", 5, [], None, "PUBLIC"])}
    if path.startswith("/api/tokens/{id}") and method in ("PUT", "POST"):
        return rng.choice(
            [
                {"image_concurrency": rng.choice(["x", [], {}, "\u00b2"])},
                {"video_enabled": rng.choice(["yes", [], 5])},
                {"proxy": rng.choice(["not a proxy", 5])},
                {"invite_code": rng.choice([5, [], {}])},
            ]
        )
    return None


RICH = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/videos"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/images/edits"),
    ("POST", "/v1/videos/characters"),
    ("POST", "/api/tokens"),
    ("PUT", "/api/admin/settings"),
    ("POST", "/api/admin/keys"),
}
# Routes whose every well-authorised request is valid whatever the body: only fuzzed without
# valid credentials (logout would end the fuzz's own session; test-all re-reads every account).
UNAUTHORISED_ONLY = {("POST", "/api/logout"), ("POST", "/api/tokens/test-all")}
# Routes that change what an existing id names without reading a body: nonexistent ids only.
_ID_SAFE_BODY = {
    ("POST", "/v1/videos/{id}/remix"),
    ("POST", "/api/jobs/{id}/cancel"),  # every stored job has ended: a 409
    ("PUT", "/api/tokens/{id}"),
    ("POST", "/api/tokens/{id}/update"),
    ("POST", "/api/characters/{id}/visibility"),
}


def _real_ids(
    path: str, token_ids: list[str], char_ids: list[str], job_ids: list[str]
) -> list[str]:
    """The stored ids a route's {id} names, if it takes one."""
    if path.startswith(("/api/tokens/{id}", "/api/characters/by-token/")):
        return token_ids
    if path.startswith("/api/characters/{id}"):
        return char_ids
    if path.startswith(("/v1/", "/api/jobs/")) and "{id}" in path:
        return job_ids
    return []


def cases(
    seed: int,
    count: int,
    *,
    token_ids: list[str],
    char_ids: list[str],
    job_ids: list[str],
    settings: dict[str, dict[str, Any]],
) -> list[Case]:
    """`count` requests spread over every route, reproducible from `seed`."""
    rng = random.Random(seed)
    out: list[Case] = []
    # Every route in turn; the ones that parse rich bodies get four turns.
    routes = [r for r in ROUTES for _ in range(4 if (r.method, r.path) in RICH else 1)]
    for i in range(count):
        route = routes[i % len(routes)]
        method, path = route.method, route.path
        if route.auth == "public":
            auth = rng.choice(["none", "bogus", "key", "admin"])
        elif (method, path) in UNAUTHORISED_ONLY or rng.random() < 0.25:
            # No credential, a wrong one, or the other kind than the route takes.
            wrong = {"key": "admin", "admin": "key"}.get(route.auth, "bogus")
            auth = rng.choice(["none", "bogus", wrong])
        else:
            auth = {"key": "key", "admin": "admin"}.get(route.auth) or rng.choice(["key", "admin"])
        granted = route.auth == "public" or (
            auth == "key" and route.auth in ("key", "key_or_admin")
        )
        granted = granted or (auth == "admin" and route.auth in ("admin", "key_or_admin"))
        ids = BAD_JOB_IDS if "/v1/" in path or "/api/jobs/" in path else BAD_INT_IDS
        if path in ("/api/profile/{username}", "/api/user/{user_id}/feed", "/tmp/{name}"):
            ids = [*BAD_NAMES, *BAD_STRINGS[1:]]
        if path == "/static/{name}":
            ids = BAD_NAMES
        real = _real_ids(path, token_ids, char_ids, job_ids)
        safe = method == "GET" or (method, path) in _ID_SAFE_BODY
        if granted and real and safe and rng.random() < 0.5:
            ids = real  # an existing id: read, or sent a body it must refuse
        url = _fill(rng, path, ids)
        if method == "GET" and rng.random() < 0.8:
            url += _query(rng)
        headers: dict[str, str] = {"Content-Type": "application/json"}
        body: bytes | None = None
        if method != "GET":
            roll = rng.random()
            if granted:
                value = _authorised_body(rng, method, path, settings)
            else:  # refused for its credential alone: a valid body proves the check comes first
                value = VALID_BODIES.get(path) if roll < 0.5 else _random_json(rng, 3)
            if path in ("/v1/videos", "/v1/videos/characters") and granted and roll < 0.3:
                form_bad = VIDEO_FORM_BAD if path == "/v1/videos" else {"name": ["", "x" * 81]}
                body, headers = _form(rng, VIDEO_BASE, form_bad), dict(_FORM_CT)
            elif granted and roll < 0.45:
                # Junk keys only: every body-reading route has a required field it lacks.
                body = _json(_random_json(rng, 3, top=True))
            elif value is None or roll > 0.8:
                body, headers = _garbage(rng)
            else:
                body = _json(value)
        out.append(Case(method, url, auth, body, headers))
    # Methods and paths outside the table: 404 and 405 in the envelope.
    for method, url in [("PATCH", "/v1/videos"), ("GET", "/v1/nope"), ("DELETE", "/api/login")]:
        out.append(Case(method, url, "key"))
    return out
