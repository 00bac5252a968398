"""Every route in the table: its auth level holds without credentials, and no route shadows another."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from sora2api import keys
from sora2api.routes import ROUTES, Route

from .conftest import KEY

_VAR = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


def _concrete(path: str) -> str:
    """The path with every {var} replaced by a dummy value."""
    return _VAR.sub("1", path)


def _pattern(path: str) -> re.Pattern[str]:
    """What aiohttp matches for a path: {var} is one segment, {var:re} its regex."""
    out, last = "", 0
    for m in _VAR.finditer(path):
        out += re.escape(path[last : m.start()]) + f"(?:{m.group(2) or '[^{}/]+'})"
        last = m.end()
    return re.compile(out + re.escape(path[last:]) + "$")


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    """The app with a [metrics] token, so GET /metrics is guarded like every other route
    (without one it answers 404: tests/test_metrics.py)."""
    return await make_client(metrics={"token": "metrics-token-0123456789"})


GUARDED = tuple(r for r in ROUTES if r.auth != "public")
ADMIN_ONLY = tuple(r for r in ROUTES if r.auth == "admin")


async def _problems(
    client: TestClient, routes: tuple[Route, ...], headers: dict[str, str]
) -> list[str]:
    """Every route of `routes` that does not answer 401 with the OpenAI envelope."""
    problems = []
    for route in routes:
        resp = await client.request(route.method, _concrete(route.path), json={}, headers=headers)
        body = await resp.json(content_type=None)
        err = body.get("error") if isinstance(body, dict) else None
        ok = (
            resp.status == 401
            and set(body) == {"error"}
            and isinstance(err, dict)
            and set(err) == {"message", "type", "param", "code"}
            and err["type"] == "authentication_error"
            and bool(err["message"])
            and resp.headers.get("WWW-Authenticate") == "Bearer"
        )
        if not ok:
            problems.append(f"{route.method} {route.path} -> {resp.status} {body}")
    return problems


# One request per route in a loop rather than one test per route: a fresh app per case made this
# file take half a minute.
async def test_no_credentials_is_401(client: TestClient) -> None:
    assert GUARDED
    assert not await _problems(client, GUARDED, {})


async def test_wrong_credentials_are_401(client: TestClient) -> None:
    headers = {"Authorization": "Bearer not-the-key-nor-a-session"}
    assert not await _problems(client, GUARDED, headers)


async def test_api_key_does_not_open_admin_routes(client: TestClient) -> None:
    assert ADMIN_ONLY
    assert not await _problems(client, ADMIN_ONLY, KEY)


async def test_expired_or_revoked_session_is_401(client: TestClient) -> None:
    token, _ = await client.app[keys.AUTH].login("admin", "admin", "test")
    await client.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
    admin_routes = tuple(r for r in ROUTES if r.auth in ("admin", "key_or_admin"))
    assert not await _problems(client, admin_routes, {"Cookie": f"sora2api_session={token}"})


def test_route_table_has_public_login_and_the_expected_levels() -> None:
    levels = {(r.method, r.path): r.auth for r in ROUTES}
    assert levels[("POST", "/api/login")] == "public"
    assert levels[("GET", "/api/characters/search")] == "key"
    assert levels[("DELETE", "/api/characters/{id}")] == "admin"
    assert len(levels) == len(ROUTES), "a method and path is registered twice"


def shadowed(routes: tuple[Route, ...]) -> list[str]:
    """Pairs where an earlier {var} route would also match a later, more specific route."""
    problems = []
    for j, later in enumerate(routes):
        target = _concrete(later.path)
        for earlier in routes[:j]:
            if earlier.path == later.path or "{" not in earlier.path:
                continue
            # A match by a pattern with more variables means the later route is more specific.
            more_general = earlier.path.count("{") > later.path.count("{")
            if more_general and _pattern(earlier.path).match(target):
                problems.append(
                    f"{earlier.method} {earlier.path} precedes {later.method} {later.path}"
                )
    return problems


def test_no_variable_route_shadows_a_later_literal_one() -> None:
    """The reference's bug: /api/characters/{id} registered before /api/characters/search."""
    assert not shadowed(ROUTES)


def test_the_shadow_check_catches_the_reference_bug() -> None:
    async def handler(request: object) -> None: ...

    bad = (
        Route("DELETE", "/api/characters/{id}", handler, "admin"),  # type: ignore[arg-type]
        Route("GET", "/api/characters/search", handler, "key"),  # type: ignore[arg-type]
        Route("GET", "/api/characters/by-token/{id}", handler, "admin"),  # type: ignore[arg-type]
        Route("GET", "/api/{a}/{b}/{c}", handler, "admin"),  # type: ignore[arg-type]
        Route("GET", "/api/characters/by-token/{id}", handler, "admin"),  # type: ignore[arg-type]
    )
    assert shadowed(bad) == [
        "DELETE /api/characters/{id} precedes GET /api/characters/search",
        "GET /api/{a}/{b}/{c} precedes GET /api/characters/by-token/{id}",
    ]
    assert not shadowed(tuple(reversed(bad[:3])))
    assert _pattern("/api/characters/{id}").match("/api/characters/search")
    assert not _pattern("/api/characters/{id}").match("/api/characters/by-token/1")
    digits = _pattern("/v1/x/{n:\\d+}")
    assert digits.match("/v1/x/12") and not digits.match("/v1/x/a")


async def test_search_is_reachable_with_the_key(client: TestClient) -> None:
    # No token yet: 503 from the search handler itself, so the admin {id} route did not catch it.
    resp = await client.get("/api/characters/search?username=x", headers=KEY)
    assert resp.status == 503
    assert "no tokens" in (await resp.json())["error"]["message"]
