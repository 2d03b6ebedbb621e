"""The edge's relay loop: chunks already in hand go out in one write, with the same bytes as
one by one, and a failure after them still lets them out first."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from failwell.api.chatstream import _stream
from failwell.contracts import Answer
from failwell.errors import UpstreamMalformed
from failwell.routing.streams import OpenStream


class _Buffered:
    """A stream whose chunks all arrive at once; ``fail_at``: the chunk that raises."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.first = chunks[:1]
        self._left = chunks[1:]
        self._fail_at = fail_at
        self._read = 1
        self.done = False
        self.finish_at: int | None = len(chunks) - 1

    @property
    def buffered(self) -> bool:
        return bool(self._left)

    async def next(self, idle: float) -> bytes | None:
        if self._read == self._fail_at:
            raise UpstreamMalformed("bad", backend="b", replica="r")
        if not self._left:
            self.done = True
            return None
        self._read += 1
        return self._left.pop(0)

    def answer(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def _run(stream: _Buffered) -> tuple[list[bytes], BaseException | None]:
    answer = Answer({}, "primary", "full", "b", None, 0.0, 0)
    opened = OpenStream(answer, stream, request=None)  # type: ignore[arg-type]
    sent: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["body"])

    async def go() -> BaseException | None:
        try:
            await _stream(opened, stream, 1.0, send, answer)
        except UpstreamMalformed as exc:
            return exc
        return None

    return sent, asyncio.run(go())


def test_chunks_in_hand_go_out_in_one_write_with_the_same_bytes() -> None:
    chunks = [b'{"n":%d}' % i for i in range(5)]
    sent, failure = _run(_Buffered(chunks))
    assert failure is None
    assert len(sent) == 2  # the first chunks, then the four in hand together
    body = b"".join(sent)
    assert body.startswith(b'data: {"n":0}\n\ndata: {"n":1}\n\n')
    assert body.count(b"data: ") == 5 and body.endswith(b'"resumed":false}}\n\n')


@pytest.mark.parametrize("fail_at", [1, 3])
def test_a_failure_in_a_batch_sends_the_chunks_before_it_first(fail_at: int) -> None:
    chunks = [b'{"n":%d}' % i for i in range(5)]
    sent, failure = _run(_Buffered(chunks, fail_at=fail_at))
    assert isinstance(failure, UpstreamMalformed)
    assert b"".join(sent).count(b"data: ") == fail_at
