"""A seeded generator of requests that every route must refuse (or, for reads, answer) cleanly.

Every request that could change something is invalid by construction: a nonexistent or malformed
path id, a missing or wrong credential, or a body with at least one field holding a value that
field never accepts. So after the run nothing stored may differ and the simulator may have seen no
create and no upload. Reads (GET) may answer 200: they are fuzzed through their query strings.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from sora2api.routes import ROUTES

# Big enough to cross every length cap (prompts: 10,000 characters), small enough to stay quick.
HUGE = "\u732b" * 20_000
# Digits Python's isdigit() accepts but int() refuses: the class of issue 9 item 15's "²" bug.
ODD_DIGITS = ["\u00b2", "\u2460", "\u00b9\u00b2"]
# int() accepts these (Arabic-Indic 9999): out of range wherever an id or count is expected.
WIDE_NINES = "\u0669\u0669\u0669\u0669"

WRONG_TYPES: list[Any] = [None, True, 0, -1, 1.5, 1e308, 2**64 - 1, [], [1, "x"], {}, {"a": 1}]
BAD_STRINGS: list[Any] = [
    "",
    " ",
    "nope",
    "\u00b2",
    "\u2460",
    "\ufeff\u200b",
    "\U0001f408" * 3,
    "../../etc/passwd",
    "%00",
    "'; DROP TABLE tokens; --",
    "<script>alert(1)</script>",
]
BAD_URLS: list[Any] = [
    "not a url",
    "file:///etc/passwd",
    "ftp://example.com/x.png",
    "http://127.0.0.1:1/x.png",
    "http://[::1]:1/x.png",
    "data:image/png;base64,@@@",
    "data:image/png;base64," + base64.b64encode(b"hello world").decode(),
    "data:;base64,",
    5,
    [1],
    {"url": 5},
]
# Ids that exist nowhere (or do not parse as ids): safe on routes that change what they name.
BAD_INT_IDS = ["0", "-1", "999999", "1e3", "1.0", "abc", "9" * 40, WIDE_NINES, *ODD_DIGITS, "%20"]
BAD_JOB_IDS = [
    "video_" + "0" * 32,
    "image_" + "f" * 32,
    "char_0",
    "..",
    "%2e%2e%2fetc",
    "x" * 2000,
    WIDE_NINES,
    *ODD_DIGITS,
]
BAD_NAMES = ["x.mp4", "..%2f..%2fetc%2fpasswd", "a" * 32 + ".png", "index.html%00.png", "%2e%2e"]
# Up to four query values per URL: the request line stays under aiohttp's 8 KB limit.
QUERY_VALUES = ["", "-1", "0", "abc", "1e3", "99999999999999999999", "true", "maybe", HUGE[:150]]
QUERY_VALUES += [*ODD_DIGITS, WIDE_NINES, "asc", "desc", "video", "json", "xml", "1", "%ff"]
QUERY_NAMES = ["limit", "offset", "order", "after", "variant", "format", "status", "kind"]
QUERY_NAMES += ["token_id", "cursor", "cut", "intent", "username", "include_deleted", "reveal"]
QUERY_NAMES += ["response_format", "invite_code", "\u00b2", "limit[]"]

PNG_B64 = "data:image/png;base64,iVBORw0KGgo="  # a PNG signature and nothing else

# What each create-like route starts from (a valid body) and, per field, values it must refuse.
# Left out on purpose (issue 9 item 15, fixed by other helpers): "n": "²" / "①" on the images
# routes, huge chat prompts, CR/LF/NUL in session tokens, character_options.timestamps 1e308.
CHAT_BASE = {"model": "sora-image", "messages": [{"role": "user", "content": "a cat"}]}
CHAT_BAD: dict[str, list[Any]] = {
    "model": ["nope", "", 5, [], {}, "sora-image\x00", "\uff33ORA", HUGE, True, *ODD_DIGITS],
    "messages": [
        [],
        "x",
        5,
        None,
        {},
        [1],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": 5}],
        [{"role": "user", "content": [{"type": "audio"}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}],
        [{"role": "user", "content": [{"type": "text", "text": 5}]}],
    ],
    "stream": ["yes", 1, 0, [], {}, "\u00b2"],
    "style_id": ["glitter", 5, [1], {"a": 1}, "\uff41nime"],
    "character_options": ["x", 5, [1]],
    "remix_target_id": ["s_123", 5, ["x"], {"a": 1}],
    "image": [u for u in BAD_URLS if u != [1]],
    "video": ["data:video/mp4;base64,AAAA", 5],
}
VIDEO_BASE = {"model": "sora-2", "prompt": "a cat", "seconds": "10", "size": "1280x720"}
VIDEO_BAD: dict[str, list[Any]] = {
    "model": ["nope", 5, [], {}, "sora-image", *ODD_DIGITS, HUGE],
    "seconds": ["4", "8", "12", "25", "0", "-10", "10.5", 4, 1e308, -1, [], {}, "\u0669"],
    "size": ["1x1", "\u00b2x\u00b2", "1280\u00d7720", 5, [], {"w": 1}],
    "prompt": [5, [], {}, True, HUGE],
    "input_reference": BAD_URLS,
    "style_id": ["glitter", 5, [1]],
    "remix_target_id": ["s_123", 5],
    "characters": [5, [5], [{"id": 5}], ["a"] * 6, {"a": 1}, True],
}
VIDEO_FORM_BAD: dict[str, list[str]] = {
    "model": ["nope", "sora-image", "\u00b2"],
    "seconds": ["4", "\u00b2", "\u2460", "\u0669", "1e1", "ten"],
    "size": ["1x1", "\u00b2x\u00b2", "big"],
    "prompt": [HUGE],
    "input_reference": ["not a url", "file:///etc/passwd", "data:image/png;base64,@@@"],
}
IMAGE_BASE = {"model": "sora-image", "prompt": "a cat", "n": 1, "size": "1024x1024"}
IMAGE_BAD: dict[str, list[Any]] = {
    "model": ["nope", 5, [], "sora-2", "sora-video-10s", HUGE],
    "n": [0, 5, -1, "abc", 1.5, [], {}, 1e308, "0", "-1", "1.5", "99999999999999999999"],
    "size": ["1x1", "\u00b2x\u00b2", 5, [], "1024\u00d71024"],
    "response_format": ["xml", 5, [], {}],
    "prompt": [5, [], {}, HUGE],
    "stream": [True, "true"],
}
EDIT_BAD: dict[str, list[Any]] = {
    **IMAGE_BAD,
    "image": [u for u in BAD_URLS if not isinstance(u, list)],
    "mask": [PNG_B64],
}
CHARACTER_BASE = {"name": "cat", "video": "data:video/mp4;base64,AAAAIGZ0eXBpc29t"}
CHARACTER_BAD: dict[str, list[Any]] = {
    "name": ["", "   ", 5, [], "x" * 81, HUGE],
    "video": ["nope", 5, [], {}, "data:video/mp4;base64,@@@", "http://127.0.0.1:1/x.mp4"],
}
TOKEN_BAD: dict[str, list[Any]] = {
    "token": ["not-a-jwt", "a.b.c", "eyJ.eyJ.sig", 5, [], {}],
    "bogus_field": [1, "x"],
    "image_concurrency": ["x", [], {}, "\u00b2"],
    "video_enabled": ["yes", [], {}],
    "proxy": ["not a proxy", "ftp://x", "http://", 5],
}
# Values of the wrong type for a setting of each type (ranges are issue 9 item 13's business).
SETTING_WRONG: dict[str, list[Any]] = {
    "bool": ["yes", 5, [1], {}, "\u00b2"],
    "int": ["x", [1], {}, "\u00b2", "1e3", True],
    "float": ["x", [1], {}, "\u00b2", True, "fast"],
    "str": [5, [1], {}, True, 1.5],
}


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


_JUNK_KEYS = ["", "a", "\u00b2", "\U0001f408", "x" * 300, "__proto__", "$where", "0", "null"]


def _random_json(rng: random.Random, depth: int, *, top: bool = False) -> Any:
    """A random JSON value (an object when `top`) whose keys are never a real field name."""
    if top or (depth > 0 and rng.random() < 0.4):
        return {
            rng.choice(_JUNK_KEYS): _random_json(rng, depth - 1) for _ in range(rng.randint(1, 4))
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


def _authorised_body(rng: random.Random, method: str, path: str, settings: dict[str, str]) -> Any:
    """A body this (valid-auth) route must refuse, or None to send garbage instead."""
    if path == "/v1/chat/completions":
        body = _mutated(rng, CHAT_BASE, CHAT_BAD)
        if body["model"] == "sora-image" and {"remix_target_id", "character_options"} & set(body):
            # Image models ignore these two fields whatever their value (reported, not fixed
            # here): only a video model is sure to refuse them.
            body["model"] = "sora-video-10s"
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
        return {name: rng.choice([5, [], {}, None, "", "nope" * 5]), "proxy": rng.choice([5, []])}
    if path == "/api/tokens/import":
        return rng.choice([{"data": 5}, {"format": "xml", "data": "x"}, {"tokens": 5}, {}])
    if path == "/api/tokens/test-proxy":
        return {"proxy": rng.choice(["not a proxy", "ftp://x:1", "http://", 5, [], ""])}
    if path == "/api/login":
        return rng.choice([{"username": 5}, {"username": "admin", "password": "wrong"}, {}])
    if path == "/api/admin/password":
        return {"old_password": rng.choice(["wrong", 5, None]), "new_password": rng.choice([5, ""])}
    if path == "/api/admin/apikey":
        return {"api_key": rng.choice([5, "", [], {}, None, True])}
    if path == "/api/admin/settings":
        # Wrong types and unknown keys only: value ranges are issue 9 item 13 (another helper).
        key = rng.choice([*settings, "nope.key", "upstream", "", "\u00b2.x"])
        value = rng.choice(SETTING_WRONG.get(settings.get(key, ""), [1, "x", None]))
        return rng.choice([{"values": {key: value}}, {"values": []}, {"values": {}}, {key: value}])
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
}
# Bodies each create-like route accepts: sent only with a missing or wrong credential.
VALID_BODIES: dict[str, Any] = {
    "/v1/chat/completions": CHAT_BASE,
    "/v1/videos": VIDEO_BASE,
    "/v1/images/generations": IMAGE_BASE,
    "/v1/images/edits": {**IMAGE_BASE, "image": PNG_B64},
    "/v1/videos/characters": CHARACTER_BASE,
    "/api/admin/apikey": {"api_key": "fuzz-key-0123456789"},
    "/api/admin/password": {"old_password": "a-better-password", "new_password": "fuzz-pass-123"},
    "/api/tokens/{id}": {"remark": "fuzzed"},
    "/api/tokens/{id}/update": {"remark": "fuzzed"},
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
    settings: dict[str, str],
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
