"""The values the fuzz corpus draws from: refused values per field, odd ids, odd queries."""

from __future__ import annotations

import base64
from typing import Any

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
QUERY_NAMES += ["key_id"]  # the webhook deliveries listing (p12-webhooks)
# A create's own webhook_url (p12-webhooks): never accepted in these forms.
BAD_WEBHOOK_URLS: list[Any] = ["ftp://h.example/x", "not a url", 5, [], {}, "https://", HUGE]

PNG_B64 = "data:image/png;base64,iVBORw0KGgo="  # a PNG signature and nothing else

# Control characters inside a pasted credential (CR/LF would split an HTTP header).
CONTROL_CREDENTIALS = ["abc\r\nSet-Cookie: x=1", "abc\nx", "a\x00b", "abc\x7f", "\r\n"]
# A valid MP4 start: a chat body carrying it reaches the character options' checks.
MP4_URL = "data:video/mp4;base64,AAAAIGZ0eXBpc29t"

# What each create-like route starts from (a valid body) and, per field, values it must refuse.
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
        [{"role": "user", "content": HUGE}],  # over the 10,000-character prompt cap
        [{"role": "user", "content": [{"type": "text", "text": HUGE[:6000]}] * 2}],
        [{"role": "user", "content": [{"type": "text", "text": "x"}] * 101}],  # parts cap
        [{"role": "user", "content": "a cat"}] * 1001,  # messages cap
    ],
    "stream": ["yes", 1, 0, [], {}, "\u00b2"],
    "style_id": ["glitter", 5, [1], {"a": 1}, "\uff41nime"],
    "character_options": [
        "x",
        5,
        [1],
        {"timestamps": "1e308,1e309"},
        {"timestamps": "nan,1"},
        {"timestamps": "3,1"},
        {"username": "no spaces please"},
    ],
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
    "webhook_url": BAD_WEBHOOK_URLS,
}
VIDEO_FORM_BAD: dict[str, list[str]] = {
    "model": ["nope", "sora-image", "\u00b2"],
    "seconds": ["4", "\u00b2", "\u2460", "\u0669", "1e1", "ten"],
    "size": ["1x1", "\u00b2x\u00b2", "big"],
    "prompt": [HUGE],
    "input_reference": ["not a url", "file:///etc/passwd", "data:image/png;base64,@@@"],
    "webhook_url": ["ftp://h.example/x", "http://a b.example/"],
}
IMAGE_BASE = {"model": "sora-image", "prompt": "a cat", "n": 1, "size": "1024x1024"}
IMAGE_BAD: dict[str, list[Any]] = {
    "model": ["nope", 5, [], "sora-2", "sora-video-10s", HUGE],
    "n": [0, 5, -1, "abc", 1.5, [], {}, 1e308, "0", "-1", "1.5", "99999999999999999999"]
    + [*ODD_DIGITS, WIDE_NINES, "\u0663"],
    "size": ["1x1", "\u00b2x\u00b2", 5, [], "1024\u00d71024"],
    "response_format": ["xml", 5, [], {}],
    "prompt": [5, [], {}, HUGE],
    "stream": [True, "true"],
    "webhook_url": BAD_WEBHOOK_URLS,
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
    "timestamps": ["1e308,1e309", "nan,1", "3,1", "-1,2", "x", [1e308, 1e309], 5],
}
TOKEN_BAD: dict[str, list[Any]] = {
    "token": ["not-a-jwt", "a.b.c", "eyJ.eyJ.sig", 5, [], {}, "t" * 20_000, *CONTROL_CREDENTIALS],
    "st": [5, [], "s" * 20_000, *CONTROL_CREDENTIALS],
    "rt": [5, {}, "rt_" + "r" * 20_000, *CONTROL_CREDENTIALS],
    "client_id": ["c" * 100_000, "app id", "app\r\nid", 5, []],
    "remark": ["r" * 501, 5, []],
    "bogus_field": [1, "x"],
    "image_concurrency": ["x", [], {}, "\u00b2"],
    "video_enabled": ["yes", [], {}],
    "proxy": ["not a proxy", "ftp://x", "http://", 5, "socks5://", "socks5://./"]
    + ["http://" + "h" * 100 + ":1", "http://" + "h" * 3000 + ":1", "http://a\tb:1"],
}
# Bodies of POST /api/tokens/st2at and /rt2at: each field refused.
CONVERT_BAD: dict[str, list[Any]] = {
    "st": [5, [], {}, None, "", "nope" * 5, "s" * 20_000, *CONTROL_CREDENTIALS],
    "rt": [5, [], {}, None, "", "rt_" + "r" * 20_000, *CONTROL_CREDENTIALS],
    "client_id": ["c" * 300, "app id", "a\x00b", 5],
    "proxy": [5, [], "socks5://", "http://" + "h" * 100 + ":1"],
}
# Values of the wrong type for a setting of each type.
SETTING_WRONG: dict[str, list[Any]] = {
    "bool": ["yes", 5, [1], {}, "\u00b2"],
    "int": ["x", [1], {}, "\u00b2", "1e3", True],
    "float": ["x", [1], {}, "\u00b2", True, "fast"],
    "str": [5, [1], {}, True, 1.5],
}
# Refused formats of every free-text setting (config_rules.FORMATS); a setting with a fixed set of
# choices or a numeric range gets its refused values from GET /api/admin/settings instead.
SETTING_BAD_FORMAT: dict[str, list[Any]] = {
    "server.public_url": ["javascript:alert(1)//", "ftp://x", "http://", "http://x/?q=1"]
    + ["http://x/#f", "http://a b", "http://x:99999", "http://./", "x" * 3000],
    "upstream.proxy": ["http://", "socks5://", "socks5://:1080", "socks5://./", "ftp://x:1"]
    + ["http://x:1/path", "http://x:port", "not a proxy", "http://" + "h" * 100 + ":1"],
    "upstream.user_agent": ["", "a\r\nX-Injected: 1", "a\x00b", "u" * 513],
    "upstream.third_party_url": ["", "http://x/no-placeholder.mp4", "javascript:{post_id}"]
    + ["ftp://x/{post_id}", "http:///{post_id}"],
    "generation.watermark_custom_url": ["ftp://x", "http://", "javascript:alert(1)", "http://a b"],
    "generation.watermark_custom_token": ["a b", "a\nb", "t" * 1025],
    "metrics.token": ["a b", "a\nb", "t" * 257],
}
# In range alone but breaking a rule between two settings (cooldown_max >= cooldown_base; the
# test config keeps the defaults, 60 and 3600).
SETTING_BAD_RELATION: dict[str, list[Any]] = {
    "pool.cooldown_max": [1.0, 59.9],
    "pool.cooldown_base": [3601.0, 86400.0],
}
# A valid change sent beside a refused one: the update is all or nothing.
SETTING_VALID = {"upstream.poll_interval": 0.5, "server.public_url": "https://example.com"}

# POST /api/admin/keys: a valid body and values each field refuses.
KEY_BASE: dict[str, Any] = {"name": "fuzzed", "limits": {"rpm": 5}}
KEY_BAD: dict[str, list[Any]] = {
    "name": ["", "  ", 5, None, [], "x" * 101],
    "models": ["sora-image", [], [5], {}, [""]],
    "expires_at": ["soon", True, -1, [], 1e300],
    "limits": [[], "x", {"rpm": 0}, {"rpm": "5"}, {"nope": 1}, {"concurrency": 1.5}],
    "webhook_urls": ["https://a.b", ["ftp://x"], ["http://"], [5], ["x"] * 11],
    "progress_format": ["xml", 5, []],
    "content_format": ["html", True],
    "enabled": [False, "no"],
}

# Bodies each create-like route accepts: sent only with a missing or wrong credential.
VALID_BODIES: dict[str, Any] = {
    "/v1/chat/completions": CHAT_BASE,
    "/v1/videos": VIDEO_BASE,
    "/v1/images/generations": IMAGE_BASE,
    "/v1/images/edits": {**IMAGE_BASE, "image": PNG_B64},
    "/v1/videos/characters": CHARACTER_BASE,
    "/api/admin/apikey": {"api_key": "fuzz-key-0123456789"},
    "/api/admin/keys": KEY_BASE,
    "/api/admin/keys/{id}": {"enabled": False},
    "/api/admin/password": {"old_password": "a-better-password", "new_password": "fuzz-pass-123"},
    "/api/tokens/{id}": {"remark": "fuzzed"},
    "/api/tokens/{id}/update": {"remark": "fuzzed"},
}
# Object keys that are never a real field name.
JUNK_KEYS = ["", "a", "\u00b2", "\U0001f408", "x" * 300, "__proto__", "$where", "0", "null"]
