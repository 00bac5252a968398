"""GET /metrics for Prometheus, behind its own bearer token ([metrics] token)."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .. import keys
from ..errors import AuthenticationError


def metrics_auth(request: web.Request) -> None:
    """No token configured: the route does not exist (404). Else the bearer token must match."""
    token = request.app[keys.SETTINGS].current.metrics.token
    if not token:
        raise web.HTTPNotFound()
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), token.encode()
    ):
        raise AuthenticationError(
            "Invalid or missing metrics token: send Authorization: Bearer <[metrics] token>",
            code="invalid_metrics_token",
        )


async def scrape(request: web.Request) -> web.Response:
    """The exposition, read at scrape time."""
    body = await request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
