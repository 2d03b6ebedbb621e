"""Stream faults: an upstream chat stream that fails after ``after`` chunks.

    stream_stall      no more chunks: the stream's idle timeout ends it (UpstreamTimeout)
    stream_cut        the connection drops without ``[DONE]`` (UpstreamUnavailable)
    stream_malformed  a chunk that cannot be decoded (UpstreamMalformed)
    stream_error      an error event (UpstreamStreamError)
    stream_trickle    every chunk after the first ``after`` (and after the first token) comes
                      ``latency`` late; a delay past the idle timeout is a stall

With ``after`` at most the chunks read up to the first token, the fault hits before the first
chunk, and the stream never opens (the chain moves on, as for the real failure). The errors are
the ones ``ChatStream`` raises for the real failures, so the relay, breakers and the mid-stream
policy react exactly as they would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from failwell.contracts import ChunkStream
from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

STALL, CUT, MALFORMED, ERROR, TRICKLE = (
    "stream_stall",
    "stream_cut",
    "stream_malformed",
    "stream_error",
    "stream_trickle",
)


def stream_failure(kind: str, tag: str) -> UpstreamError:
    """The error a stream fault of ``kind`` ends a stream with."""
    if kind == CUT:
        return UpstreamUnavailable(f"{tag}: the stream was cut before [DONE]")
    if kind == MALFORMED:
        return UpstreamMalformed(f"{tag}: a malformed chunk")
    if kind == ERROR:
        return UpstreamStreamError(f"{tag}: an error event")
    return UpstreamTimeout(f"{tag}: the stream stalled")


class FaultyStream:
    """``inner`` with a stream fault after ``after`` chunks (``after`` ≥ the chunks in
    ``inner.first``)."""

    __slots__ = (
        "_delay",
        "_inner",
        "_kind",
        "_label",
        "_left",
        "_tag",
        "done",
        "finish_at",
        "first",
    )

    def __init__(
        self,
        inner: ChunkStream,
        kind: str,
        after: int,
        delay: float,
        tag: str,
        label: Callable[[UpstreamError], UpstreamError],
    ) -> None:
        self._inner, self._kind, self._delay = inner, kind, delay
        self._tag, self._label = tag, label
        self.first = inner.first
        self.done, self.finish_at = inner.done, inner.finish_at
        self._left = after - len(inner.first)  # chunks still passed untouched

    async def next(self, idle: float) -> bytes | None:
        if self._left > 0:
            self._left -= 1
            return await self._pass(idle)
        if self._kind == TRICKLE:
            if self._delay >= idle:
                await asyncio.sleep(idle)
                raise self._label(stream_failure(STALL, self._tag))
            await asyncio.sleep(self._delay)
            return await self._pass(idle)
        if self._kind == STALL:
            await asyncio.sleep(idle)
        raise self._label(stream_failure(self._kind, self._tag))

    @property
    def buffered(self) -> bool:
        """Only while chunks pass untouched: a fault's chunk is never part of a batch."""
        return self._left > 0 and self._inner.buffered

    async def _pass(self, idle: float) -> bytes | None:
        inner = self._inner
        raw = await inner.next(idle)
        self.done, self.finish_at = inner.done, inner.finish_at
        return raw

    def answer(self) -> dict[str, Any]:
        return self._inner.answer()

    def close(self) -> None:
        self._inner.close()
