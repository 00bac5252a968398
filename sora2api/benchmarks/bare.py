"""The baseline for the GET figures: a bare aiohttp app returning the same bytes.

Run as a script (`python bare.py PORT PATH BODY_FILE [PATH BODY_FILE ...]`), not as
`-m sora2api...`, so it imports aiohttp and nothing of sora2api: its RSS and speed are what
aiohttp alone costs. Each PATH answers its file's bytes as application/json. It checks no API
key and has no middlewares; sora2api's routes do both (see sora2api/bench.py).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web


def _handler(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application()
    pairs = sys.argv[2:]
    for path, body_file in zip(pairs[::2], pairs[1::2], strict=True):
        app.router.add_get(path, _handler(Path(body_file).read_bytes()))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
