"""Identifier minting in the formats the real backend uses (contract section 2.1b)."""

from __future__ import annotations

import random
import string
import time

# Crockford base32, lowercase: what the backend's ULID-like task/generation ids are made of.
_ULID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_URLSAFE = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits


class IdMaker:
    """Mints ids from one seeded RNG so a seeded simulator is reproducible."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def _pick(self, alphabet: str, n: int) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    def hex(self, n: int = 32) -> str:
        """n lowercase hex characters."""
        return f"{self._rng.getrandbits(n * 4):0{n}x}"

    def ulid(self) -> str:
        """26 lowercase characters; the first 10 encode the time so ids sort by creation."""
        ms = int(time.time() * 1000)
        head = "".join(_ULID_ALPHABET[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
        return head + self._pick(_ULID_ALPHABET, 16)

    def task(self) -> str:
        """`task_` + 26 lowercase alnum, e.g. task_01kcybbj56fp7vctvpmx0drrw1."""
        return "task_" + self.ulid()

    def generation(self) -> str:
        """`gen_` + 26 lowercase alnum."""
        return "gen_" + self.ulid()

    def post(self) -> str:
        """`s_` + 32 lowercase hex: the only form the clients' remix regex accepts."""
        return "s_" + self.hex(32)

    def cameo(self) -> str:
        """32 lowercase hex."""
        return self.hex(32)

    def character(self) -> str:
        """`ch_` + 32 lowercase hex, as in search tokens `<@ch_…>`."""
        return "ch_" + self.hex(32)

    def media(self) -> str:
        """Upload id; the format is the simulator's own choice."""
        return "media_" + self.hex(24)

    def asset_pointer(self) -> str:
        """Avatar upload pointer, shaped like OpenAI's file pointers."""
        return "sediment://file_" + self.hex(32)

    def user(self) -> str:
        """`user-` + 24 alnum, e.g. user-4qluo8ATzeEsuvCpOUAfAZY0."""
        return "user-" + self._pick(_ALNUM, 24)

    def opaque(self, n: int) -> str:
        """n URL-safe characters, for session and refresh tokens."""
        return self._pick(_URLSAFE, n)

    def invite_code(self) -> str:
        """Six uppercase alnum characters."""
        return self._pick(string.ascii_uppercase + string.digits, 6)
