"""The streaming bench's upstream: every POST answers a chat completion streamed as Server-Sent
Events, ``CHUNKS`` content chunks at a fixed ``GAP`` (one ticker writes the next chunk of every
open stream each tick, so the gap is the same for 1 or 512 streams), then the finish and
``[DONE]``. Each chunk carries ``"t"``: when it was written (``time.monotonic()``, one clock
for every process of the machine), so a client can tell each chunk's delivery time; any other request (a health probe) gets ``{}``. HTTP/1.1, chunked, keep-alive;
raw asyncio on uvloop.

    python bench/stream_upstream.py PORT [CHUNKS] [GAP_MS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import uvloop

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"x-accel-buffering: no\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _frame(payload: bytes) -> bytes:
    event = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


STAMP = b"0" * 17  # replaced in each write by the time it is sent (time.monotonic, %017.6f)


def _chunk(text: str | None, finish: str | None) -> bytes:
    delta = {} if text is None else {"content": text}
    return json.dumps(
        {
            "t": STAMP.decode(),
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-stream",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        },
        separators=(",", ":"),
    ).encode()


class Streams:
    def __init__(self, chunks: int, gap: float) -> None:
        self.frames = [_frame(_chunk(f"tok{i} ", None)) for i in range(chunks)]
        self.frames.append(_frame(_chunk(None, "stop")) + _frame(b"[DONE]") + b"0\r\n\r\n")
        self.gap = gap
        self.open: dict[asyncio.Transport, int] = {}

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.gap
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            stamp = b"%017.6f" % time.monotonic()
            for transport, sent in list(self.open.items()):
                if transport.is_closing():
                    del self.open[transport]
                    continue
                transport.write(self.frames[sent].replace(STAMP, stamp, 1))
                if sent + 1 == len(self.frames):
                    del self.open[transport]
                else:
                    self.open[transport] = sent + 1


class Upstream(asyncio.Protocol):
    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            assert self.transport is not None
            if not head.startswith(b"POST "):  # a health probe: answered at once
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                continue
            self.transport.write(HEAD)
            self.streams.open[self.transport] = 0


async def serve(port: int, chunks: int, gap: float) -> None:
    streams = Streams(chunks, gap)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(streams), "127.0.0.1", port, backlog=4096)
    async with server:
        await streams.tick()


if __name__ == "__main__":
    port = int(sys.argv[1])
    chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    gap_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    uvloop.run(serve(port, chunks, gap_ms / 1000))
