"""The fault proxy's stream faults on a real loopback stream: after N events a stream stalls,
is cut, gets a malformed chunk or an error event, or trickles; bad fault bodies name the
field."""

from __future__ import annotations

import asyncio

import pytest

from failwell.drills.proxy import FaultProxy, NetworkFault

EVENTS = 6


async def _sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream answering one request with a chunked SSE stream of EVENTS events."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(EVENTS):
            event = b'data: {"n": %d}\n\n' % i
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.001)
        event = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


async def _through(fault: NetworkFault) -> tuple[bytes, bool]:
    """What a client reads through the proxy within 1 s, and whether the connection closed."""
    server = await asyncio.start_server(_sse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = FaultProxy(("127.0.0.1", port))
    await proxy.start()
    proxy.set(fault)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
    got, closed = b"", False
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), 1.0)
            if not data:
                closed = True
                break
            got += data
    except ConnectionError:
        closed = True
    except TimeoutError:
        closed = False  # still open
    finally:
        writer.transport.abort()
        await proxy.stop()
        server.close()
        await server.wait_closed()
    return got, closed


def _events(got: bytes) -> list[bytes]:
    return [line for line in got.split(b"\n") if line.startswith(b"data: ")]


@pytest.mark.parametrize("kind", ["stall", "cut", "malformed", "error"])
def test_a_stream_fault_hits_after_n_events(kind: str) -> None:
    got, closed = asyncio.run(_through(NetworkFault(stream=kind, after=3)))
    events = _events(got)
    assert events[:3] == [b'data: {"n": 0}', b'data: {"n": 1}', b'data: {"n": 2}']
    assert b"[DONE]" not in got
    extra = {"stall": 0, "cut": 0, "malformed": 1, "error": 1}[kind]
    assert len(events) == 3 + extra
    if kind == "error":
        assert b'"error"' in events[-1]
    assert closed is (kind != "stall")


def test_a_trickle_delivers_everything_late_and_healthy_streams_pass() -> None:
    got, closed = asyncio.run(_through(NetworkFault(stream="trickle", after=2, gap=0.01)))
    assert len(_events(got)) == EVENTS + 1 and closed
    got, _ = asyncio.run(_through(NetworkFault()))
    assert len(_events(got)) == EVENTS + 1 and b"[DONE]" in got


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stream": "explode"}, "stream"),
        ({"stream": "cut", "after": -1}, "after"),
        ({"stream": "trickle"}, "gap"),
    ],
)
def test_bad_stream_faults_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        NetworkFault.parse(body)
