"""The baseline for GET /v1/models: a bare aiohttp app returning the same bytes.

Run as a script (`python bare.py PORT BODY_FILE`), not as `-m sora2api...`, so it imports aiohttp
and nothing of sora2api: its RSS and speed are what aiohttp alone costs. It checks no API key and
has no middlewares; sora2api's route does both (see sora2api/bench.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    port = int(sys.argv[1])
    body = Path(sys.argv[2]).read_bytes()

    async def models(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
