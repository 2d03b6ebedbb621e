"""The tensor bench's upstream: reads each request's whole body, then answers a fixed V2 body.

nginx's ``return`` answers before it has read a request body, which a 4.3 MB body turns into
a different measurement (and wrk, still writing, into errors). This server does only what an
upstream must: it reads every request to its last byte (Content-Length), then writes a fixed
answer for the path (200 for the health paths the gateway probes), keep-alive, no parsing of the tensors, no copies of the body.

    python bench/tensor_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

ANSWERS = {
    b"/v2/models/images/infer": {
        "model_name": "images",
        "outputs": [{"name": "score", "datatype": "FP32", "shape": [4, 1], "data": [0.5] * 4}],
    },
    b"/v2/models/rows/infer": {
        "model_name": "rows",
        "outputs": [{"name": "score", "datatype": "FP32", "shape": [64, 1], "data": [0.5] * 64}],
    },
}


def response(status: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % (status, len(body)) + body


READY = {path: response(b"200 OK", json.dumps(a).encode()) for path, a in ANSWERS.items()}
# the gateway's health prober asks for these; a 404 would mark the replica down mid-bench
READY[b"/v2/health/ready"] = READY[b"/v2/health/live"] = response(b"200 OK", b"{}")
READY[b"/v1/models"] = response(b"200 OK", b'{"object":"list","data":[]}')
MISSING = response(b"404 Not Found", b'{"error":"not found"}')


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.left = -1  # body bytes still to come; -1 while reading the head
        self.answer = MISSING

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        while data:
            if self.left < 0:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, data = self.head[:end], self.head[end + 4 :]
                self.head = b""
                lines = head.split(b"\r\n")
                self.answer = READY.get(lines[0].split(b" ")[1], MISSING)
                self.left = next(
                    (int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:])
                     if k.strip().lower() == b"content-length"),
                    0,
                )  # fmt: skip
            taken = min(self.left, len(data))
            self.left -= taken
            data = data[taken:]
            if self.left == 0:
                assert self.transport is not None
                self.transport.write(self.answer)
                self.left = -1


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
