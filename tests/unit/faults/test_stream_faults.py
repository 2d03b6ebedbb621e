"""Stream faults in the fault book: after ``after`` chunks a stream stalls, is cut, sends a
malformed chunk or an error event, or trickles; before the first chunk it never opens. Each
raises what ``ChatStream`` raises for the real failure; plain calls pass untouched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from failwell.contracts import ChunkStream, Request, Result
from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from failwell.faults.injection import FaultBook, FaultKind, FaultSpec, FaultyAdapter
from failwell.resilience.deadline import Deadline
from failwell.testing import FakeClock


class _Stream:
    def __init__(self, chunks: int) -> None:
        self.first = [b"0"]
        self._left = [str(i).encode() for i in range(1, chunks)]
        self.done = False
        self.finish_at: int | None = None
        self.closed = False

    @property
    def buffered(self) -> bool:
        return False

    async def next(self, idle: float) -> bytes | None:
        if not self._left:
            self.done = True
            return None
        return self._left.pop(0)

    def answer(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.closed = True


class _Streaming:
    def __init__(self) -> None:
        self.opened: list[_Stream] = []

    async def call(self, request: Request, timeout: float) -> Result:
        return Result({"ok": True})

    async def stream(self, request: Request, timeout: float) -> ChunkStream:
        self.opened.append(_Stream(10))
        return self.opened[-1]

    async def close(self) -> None:
        pass


async def _read(stream: ChunkStream, idle: float = 0.001) -> list[bytes]:
    got = list(stream.first)
    while (raw := await stream.next(idle)) is not None:
        got.append(raw)
    return got


def _adapter(**spec: Any) -> tuple[FaultyAdapter, _Streaming]:
    book = FaultBook(FakeClock())
    book.add(FaultSpec(backend="b", **spec))
    inner = _Streaming()
    return FaultyAdapter(inner, book, "b", "r1"), inner


def _request() -> Request:
    return Request("r", {"messages": []}, Deadline(1.0))


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.STREAM_STALL, UpstreamTimeout),
        (FaultKind.STREAM_CUT, UpstreamUnavailable),
        (FaultKind.STREAM_MALFORMED, UpstreamMalformed),
        (FaultKind.STREAM_ERROR, UpstreamStreamError),
    ],
)
def test_a_stream_fault_fails_the_stream_after_n_chunks(kind: FaultKind, error: type) -> None:
    adapter, inner = _adapter(kind=kind, after=4)

    async def main() -> list[bytes]:
        stream = await adapter.stream(_request(), 1.0)
        got: list[bytes] = []
        with pytest.raises(error) as info:
            got.extend(stream.first)
            while (raw := await stream.next(0.001)) is not None:
                got.append(raw)
        failure = info.value
        assert isinstance(failure, UpstreamError)
        assert failure.backend == "b" and "injected fault f1" in failure.message
        stream.close()
        return got

    assert asyncio.run(main()) == [b"0", b"1", b"2", b"3"]
    assert inner.opened[0].closed
    # Before the first chunk the stream never opens; a plain call passes.
    adapter, inner = _adapter(kind=kind, after=0)
    with pytest.raises(error):
        asyncio.run(adapter.stream(_request(), 0.001))
    assert asyncio.run(adapter.call(_request(), 1.0)).outputs == {"ok": True}


def test_a_trickle_delays_chunks_and_past_the_idle_timeout_stalls() -> None:
    adapter, _ = _adapter(kind=FaultKind.STREAM_TRICKLE, after=2, latency=0.0005)
    stream = asyncio.run(adapter.stream(_request(), 1.0))
    assert len(asyncio.run(_read(stream))) == 10 and stream.done
    adapter, _ = _adapter(kind=FaultKind.STREAM_TRICKLE, after=2, latency=0.5)
    stream = asyncio.run(adapter.stream(_request(), 1.0))
    with pytest.raises(UpstreamTimeout):
        asyncio.run(_read(stream, idle=0.001))


def test_a_trickle_needs_a_delay() -> None:
    with pytest.raises(ValueError, match="stream_trickle"):
        FaultSpec(kind=FaultKind.STREAM_TRICKLE, backend="b")
