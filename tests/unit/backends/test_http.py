"""The upstream HTTP client against a raw socket server on 127.0.0.1 that answers with each
framing HTTP/1.1 allows, and with broken ones."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from failwell.backends.http import HttpUpstream
from failwell.errors import (
    UpstreamMalformed,
    UpstreamRejected,
    UpstreamStatus,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# request bytes -> raw response (None: hang; (seconds, raw): answer after that long)
Answer = Callable[[bytes], bytes | tuple[float, bytes] | None]


async def serve(answer: Answer) -> tuple[asyncio.Server, str, list[asyncio.StreamWriter]]:
    connections: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                body = await reader.readexactly(length)
                raw = answer(head + body)
                if raw is None:
                    await asyncio.sleep(3600)
                if isinstance(raw, tuple):
                    await asyncio.sleep(raw[0])
                    raw = raw[1]
                writer.write(raw or b"")
                await writer.drain()
                if b"connection: close" in (raw or b"").lower() or (
                    b"content-length" not in (raw or b"").lower() and b"chunked" not in (raw or b"")
                ):
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v2/models/m/infer", connections


Check = Callable[[HttpUpstream, str, list[asyncio.StreamWriter]], Awaitable[None]]


def run(answer: Answer, check: Check) -> None:
    async def main() -> None:
        server, url, connections = await serve(answer)
        client = HttpUpstream("b", 4, {"x-extra": "1"})
        try:
            await check(client, url, connections)
        finally:
            await client.close()
            server.close()
            for writer in connections:
                writer.close()
            await asyncio.sleep(0.01)

    asyncio.run(main())


def fixed(raw: bytes) -> Answer:
    return lambda request: raw


def test_content_length_keep_alive_reuses_one_connection() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"a":1}'

    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        for _ in range(5):
            assert (
                await client.post(url, b'{"x":1}', 1.0, "r", {"traceparent": "00-abc"})
                == b'{"a":1}'
            )
        assert len(connections) == 1

    run(answer, check)
    assert seen[0].startswith(b"POST /v2/models/m/infer HTTP/1.1\r\n")
    assert b"x-extra: 1\r\n" in seen[0] and b"traceparent: 00-abc\r\n" in seen[0]
    assert seen[0].endswith(b'content-length: 7\r\n\r\n{"x":1}')


def test_chunked_and_close_delimited_bodies() -> None:
    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        assert await client.post(url, b"{}", 1.0, "r") == b"hello world"

    run(
        fixed(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        ),
        check,
    )
    run(fixed(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello world"), check)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n", UpstreamStatus),
        (b"HTTP/1.1 422 Unprocessable\r\ncontent-length: 2\r\n\r\n{}", UpstreamRejected),
        (b"NOT HTTP AT ALL\r\n\r\n", UpstreamMalformed),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\npartial",
            UpstreamUnavailable,
        ),
        (b"", UpstreamUnavailable),
    ],
)
def test_broken_answers_become_upstream_errors(raw: bytes, error: type[Exception]) -> None:
    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        with pytest.raises(error) as info:
            await client.post(url, b"{}", 1.0, "replica-1")
        assert info.value.backend == "b" and info.value.replica == "replica-1"  # type: ignore[attr-defined]

    run(fixed(raw), check)


def test_hang_times_out_and_the_connection_is_not_reused() -> None:
    calls: list[int] = []

    def answer(request: bytes) -> bytes | None:
        calls.append(1)
        return None if len(calls) == 1 else b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        with pytest.raises(UpstreamTimeout):
            await client.post(url, b"{}", 0.05, "r")
        assert await client.post(url, b"{}", 1.0, "r") == b"ok"
        assert len(connections) == 2

    run(answer, check)


def test_one_connection_keeps_each_requests_own_deadline() -> None:
    """A connection has one deadline timer, armed by an earlier request: it neither cuts a
    later request's longer deadline short nor lets a shorter one run over."""
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    def answer(request: bytes) -> bytes | tuple[float, bytes] | None:
        if b'"hang"' in request:
            return None
        return (0.3, ok) if b'"slow"' in request else ok

    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        loop = asyncio.get_running_loop()
        assert await client.post(url, b"{}", 0.1, "r") == b"ok"  # the timer: at +0.1 s
        assert await client.post(url, b'{"slow": 1}', 2.0, "r") == b"ok"  # answered at +0.3
        assert await client.post(url, b"{}", 5.0, "r") == b"ok"  # the timer: later still
        started = loop.time()
        with pytest.raises(UpstreamTimeout):
            await client.post(url, b'{"hang": 1}', 0.1, "r")
        assert loop.time() - started < 1.0  # its own deadline, not the timer's
        assert len(connections) == 1  # all four on one connection

    run(answer, check)


def test_connection_refused_is_unavailable() -> None:
    async def main() -> None:
        client = HttpUpstream("b", 4)
        with pytest.raises(UpstreamUnavailable):
            await client.post("http://127.0.0.1:9/x", b"{}", 1.0, "r")
        await client.close()

    asyncio.run(main())


def test_a_429_carries_retry_after_and_a_4xx_its_status_and_body() -> None:
    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        with pytest.raises(UpstreamThrottled) as throttled:
            await client.post(url, b"{}", 1.0, "r")
        assert throttled.value.retry_after == 7.0
        with pytest.raises(UpstreamRejected) as rejected:
            await client.post(url, b"{}", 1.0, "r")
        assert (rejected.value.status, rejected.value.body) == (400, b'{"error":{}}')

    answers = iter(
        [
            b"HTTP/1.1 429 Too Many\r\nretry-after: 7\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad\r\ncontent-length: 12\r\n\r\n" + b'{"error":{}}',
        ]
    )
    run(lambda request: next(answers), check)


def test_open_stream_gives_a_chunked_body_as_it_arrives() -> None:
    async def check(
        client: HttpUpstream, url: str, connections: list[asyncio.StreamWriter]
    ) -> None:
        body = await client.open_stream(url, b"{}", 1.0, "r")
        got = []
        while (piece := await body.read(1.0)) is not None:
            got.append(piece)
        body.close()
        assert b"".join(got) == b"data: a\n\ndata: [DONE]\n\n"
        again = await client.open_stream(url, b"{}", 1.0, "r")  # the connection was reused
        again.close()
        assert len(connections) == 1

    raw = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        b"9\r\ndata: a\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    )
    run(fixed(raw), check)
