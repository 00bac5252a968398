"""Minimal HS256 JWT: enough to mint access tokens the clients can decode without verifying."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

_HEADER = {"alg": "HS256", "typ": "JWT"}


class JwtError(ValueError):
    """The string is not a JWT this simulator signed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: Mapping[str, Any], secret: bytes) -> str:
    """Sign `claims` into `header.payload.signature`."""
    signing_input = _b64(orjson.dumps(_HEADER)) + "." + _b64(orjson.dumps(dict(claims)))
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(sig)


def decode(token: str, secret: bytes | None = None) -> dict[str, Any]:
    """Return the claims; verify the signature only when `secret` is given."""
    try:
        head, payload, sig = token.split(".")
        if secret is not None:
            expected = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(sig)):
                raise JwtError("bad signature")
        claims = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise JwtError(str(exc)) from exc
    if not isinstance(claims, dict):
        raise JwtError("claims are not an object")
    return claims
