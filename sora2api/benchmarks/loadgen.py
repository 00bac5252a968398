"""A lean HTTP/1.1 keep-alive load generator: `python loadgen.py HOST PORT PATH CONNS REQUESTS [AUTH]`.

Each of CONNS connections sends one GET, reads the whole response (Content-Length framing),
then sends the next; no pipelining. It speaks raw asyncio protocols rather than aiohttp's client
because on a 2-core machine an aiohttp client costs about as much CPU per request as the server
it measures, which would make both servers look alike. Prints one JSON line: requests, seconds,
rps, errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


class _Conn(asyncio.Protocol):
    def __init__(
        self, request: bytes, counter: list[int], total: int, done: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.counter = counter  # [sent, completed, errors]
        self.total = total
        self.done = done
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        if self.counter[0] >= self.total:
            assert self.transport is not None
            self.transport.close()
            return
        self.counter[0] += 1
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            start = head.find(b"content-length:")
            if start < 0:
                self.counter[2] += 1
                assert self.transport is not None
                self.transport.close()
                return
            line_end = head.find(b"\r\n", start)
            length = int(head[start + 15 : line_end if line_end > 0 else None])
            if len(self.buf) < end + 4 + length:
                return
            if not head.startswith(b"http/1.1 200"):
                self.counter[2] += 1
            del self.buf[: end + 4 + length]
            self.counter[1] += 1
            if self.counter[1] >= self.total and not self.done.done():
                self.done.set_result(None)
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def run(
    host: str, port: int, path: str, conns: int, total: int, auth: str
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    extra = f"Authorization: {auth}\r\n" if auth else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
    counter = [0, 0, 0]
    done: asyncio.Future[None] = loop.create_future()
    began = time.perf_counter()
    protocols = []
    for _ in range(conns):
        _, proto = await loop.create_connection(
            lambda: _Conn(request, counter, total, done), host, port
        )
        protocols.append(proto)
    async with asyncio.timeout(120):
        await done
    elapsed = time.perf_counter() - began
    for p in protocols:
        if p.transport is not None:
            p.transport.close()
    return {
        "requests": counter[1],
        "seconds": elapsed,
        "rps": counter[1] / elapsed,
        "errors": counter[2],
    }


def main() -> None:
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    conns, total = int(sys.argv[4]), int(sys.argv[5])
    auth = sys.argv[6] if len(sys.argv) > 6 else ""
    print(json.dumps(asyncio.run(run(host, port, path, conns, total, auth))), flush=True)


if __name__ == "__main__":
    main()
