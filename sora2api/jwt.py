"""Reading a JWT's claims without verifying it (we are not its audience): account email, expiry."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson


def decode_jwt(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified; ValueError if it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("not a JWT (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("not a JWT (payload is not base64url JSON)") from None
    if not isinstance(claims, dict):
        raise ValueError("not a JWT (payload is not an object)")
    return claims


def jwt_email(claims: Mapping[str, Any]) -> str | None:
    """The account email an OpenAI access token carries (its profile claim, else `email`)."""
    profile = claims.get("https://api.openai.com/profile")
    if isinstance(profile, dict) and isinstance(profile.get("email"), str):
        return str(profile["email"])
    email = claims.get("email")
    return email if isinstance(email, str) else None
