"""A small TCP fault proxy for network faults between the gateway and a backend replica.

Point the replica's URL at the proxy; the proxy forwards to the real server and, on demand,

    latency     delays every chunk, each way, by ``latency`` seconds
    bandwidth   caps throughput, each way, to ``bandwidth`` bytes per second
    reset       answers new connections with a TCP reset and resets the open ones
    blackhole   accepts and reads, but forwards nothing and never answers
    stream      in a Server-Sent Events answer (a chat stream), after ``after`` events:
                ``stall`` (forward nothing more, keep the connection), ``cut`` (drop it),
                ``malformed`` (a chunk that is not JSON, then drop), ``error`` (an error
                event, then drop) or ``trickle`` (each later event ``gap`` seconds late)

The mode changes at once, for new and open connections alike. Toxiproxy does this and more;
no build of it is available here, and this is all the drills need.

    proxy = FaultProxy(("127.0.0.1", 9001))
    await proxy.start()                       # proxy.port is where to connect
    proxy.set(NetworkFault(blackhole=True))
    proxy.set(NetworkFault())                 # heal
    await proxy.stop()

``python -m failwell.drills.proxy --upstream 127.0.0.1:9001 --listen 127.0.0.1:9301
--control 127.0.0.1:9302`` runs one standalone, with ``POST /_control`` taking the mode as
JSON (``{"latency": 0.2, "bandwidth": 10000, "reset": false, "blackhole": false}``, or
``{"stream": "cut", "after": 5}``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

CHUNK = 16 * 1024
STREAM_FAULTS = ("stall", "cut", "malformed", "error", "trickle")
_INJECTED = {
    "malformed": b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n',
    "error": b'data: {"error": {"message": "injected by the fault proxy", "type": '
    b'"server_error", "code": null}}\n\n',
}


@dataclass(frozen=True, slots=True)
class NetworkFault:
    latency: float = 0.0  # seconds per chunk, each way
    bandwidth: int | None = None  # bytes per second, each way
    reset: bool = False
    blackhole: bool = False
    stream: str | None = None  # a stream fault: stall, cut, malformed, error, trickle
    after: int = 0  # events of a stream answer that pass before it
    gap: float = 0.0  # trickle: seconds before each later event

    @classmethod
    def parse(cls, body: Any) -> NetworkFault:
        """From a JSON object; ValueError names the bad field."""
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        unknown = set(body) - {
            "latency",
            "bandwidth",
            "reset",
            "blackhole",
            "stream",
            "after",
            "gap",
        }
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        latency, bandwidth = body.get("latency", 0.0), body.get("bandwidth")
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ValueError("latency: expected seconds >= 0")
        if bandwidth is not None and (
            isinstance(bandwidth, bool) or not isinstance(bandwidth, int) or bandwidth <= 0
        ):
            raise ValueError("bandwidth: expected bytes per second > 0")
        flags = {k: body.get(k, False) for k in ("reset", "blackhole")}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false")
        stream, after, gap = body.get("stream"), body.get("after", 0), body.get("gap", 0.0)
        if stream is not None and stream not in STREAM_FAULTS:
            raise ValueError(f"stream: expected one of {', '.join(STREAM_FAULTS)}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError("after: expected a number of events >= 0")
        if isinstance(gap, bool) or not isinstance(gap, int | float) or gap < 0:
            raise ValueError("gap: expected seconds >= 0")
        if stream == "trickle" and gap <= 0:
            raise ValueError("gap: a trickle needs seconds > 0")
        return cls(
            float(latency),
            bandwidth,
            flags["reset"],
            flags["blackhole"],
            stream,
            after,
            float(gap),
        )

    def describe(self) -> dict[str, Any]:
        return asdict(self)


class SseCount:
    """Events of the Server-Sent Events answers on one connection while a stream fault is set
    (counted from 0 again after ``[DONE]``), and whether the answer is chunked (an injected
    event must be framed)."""

    __slots__ = ("chunked", "seen")

    def __init__(self) -> None:
        self.seen = 0
        self.chunked = False

    def see(self, data: bytes) -> None:
        if not self.chunked and b"transfer-encoding: chunked" in data.lower():
            self.chunked = True
        self.seen += data.count(b"\n\n")
        if b"data: [DONE]" in data:
            self.seen = 0

    @staticmethod
    def split(data: bytes) -> list[bytes]:
        """``data`` cut after each event's end (and its chunk frame's CRLF)."""
        parts, start = [], 0
        while (end := data.find(b"\n\n", start)) >= 0:
            end += 2
            if data[end : end + 2] == b"\r\n":
                end += 2
            parts.append(data[start:end])
            start = end
        if start < len(data):
            parts.append(data[start:])
        return parts

    def until(self, data: bytes, after: int) -> tuple[bytes, bytes | None]:
        """``data`` up to the end of event ``after`` (the response head alone for 0), and the
        rest (None when that event is not in ``data``)."""
        if after == 0 and self.seen == 0:
            end = data.find(b"\r\n\r\n")
            return (data[: end + 4], data[end + 4 :]) if end >= 0 else (b"", data)
        taken, seen = 0, self.seen
        for part in self.split(data):
            taken += len(part)
            if part.endswith((b"\n\n", b"\n\n\r\n")):
                seen += 1
                if seen >= after:
                    return data[:taken], data[taken:]
        return data, None

    def frame(self, event: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(event), event) if self.chunked else event


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.upstream, self.listen = upstream, listen
        self.fault = NetworkFault()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen[0], self.listen[1], reuse_address=True
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def set(self, fault: NetworkFault) -> None:
        self.fault = fault
        if fault.reset:
            for writer in list(self._open):
                _reset(writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._open.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self.fault.reset:
                _reset(writer)
                return
            if self.fault.blackhole:
                await self._swallow(reader)
                return
            try:
                up_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                _reset(writer)
                return
            self._open.add(upstream_writer)
            await asyncio.gather(
                self._pump(reader, upstream_writer), self._pump(up_reader, writer, upstream_writer)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    self._open.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(CHUNK):
            pass

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter | None = None,
    ) -> None:
        """Forward ``reader`` to ``writer``; ``upstream`` is given for the answers' direction
        (where stream faults apply)."""
        events = SseCount()
        while True:
            data = await reader.read(CHUNK)
            if not data:
                writer.transport.abort()
                return
            fault = self.fault
            if fault.reset:
                _reset(writer)
                return
            if fault.blackhole:
                continue  # read on, forward nothing
            delay = fault.latency + (len(data) / fault.bandwidth if fault.bandwidth else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            if upstream is not None and fault.stream is not None:
                if not await self._stream_fault(fault, events, data, reader, writer, upstream):
                    return
                continue
            writer.write(data)
            await writer.drain()

    async def _stream_fault(
        self,
        fault: NetworkFault,
        events: SseCount,
        data: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
    ) -> bool:
        """Forward ``data`` of an answer under a stream fault; False once the fault ended the
        connection."""
        if fault.stream == "trickle":
            for part in events.split(data):
                if events.seen >= fault.after and part.endswith((b"\n\n", b"\n\n\r\n")):
                    await asyncio.sleep(fault.gap)
                events.see(part)
                writer.write(part)
                await writer.drain()
            return True
        head, rest = events.until(data, fault.after)
        events.see(head)
        writer.write(head)
        await writer.drain()
        if rest is None:
            return True
        if fault.stream == "stall":
            await self._swallow(reader)  # forward nothing more; the connection stays
            return False
        if fault.stream in _INJECTED:
            writer.write(events.frame(_INJECTED[fault.stream]))
            await writer.drain()
        writer.transport.abort()
        upstream.transport.abort()
        return False


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(upstream: str, listen: str, control: str) -> None:
    from aiohttp import web

    proxy = FaultProxy(_address(upstream), _address(listen))
    await proxy.start()

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                proxy.set(NetworkFault.parse(await request.json()))
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(proxy.fault.describe())

    app = web.Application()
    app.router.add_route("*", "/_control", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    host, port = _address(control)
    await web.TCPSite(runner, host, port).start()
    print(f"READY {proxy.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await proxy.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m failwell.drills.proxy")
    parser.add_argument("--upstream", required=True, help="host:port of the real server")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on")
    parser.add_argument("--control", default="127.0.0.1:0", help="host:port of POST /_control")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.upstream, args.listen, args.control))
    return 0


if __name__ == "__main__":
    sys.exit(main())
