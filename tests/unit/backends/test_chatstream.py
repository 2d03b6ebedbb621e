"""Reading an upstream chat stream (pure logic over a scripted body): events split anywhere,
the first substantive chunk, and each way a stream can fail, named."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from failwell.backends.chatstream import ChatStream
from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from failwell.protocols.sse import SseEvents


class Scripted:
    """A body that gives its pieces in order, then ends; ``None`` in the script: a stall."""

    def __init__(self, pieces: list[bytes | None]) -> None:
        self.pieces, self.closed = list(pieces), False

    async def read(self, timeout: float) -> bytes | None:
        if not self.pieces:
            return None
        piece = self.pieces.pop(0)
        if piece is None:
            raise UpstreamTimeout("stalled")
        return piece

    def close(self) -> None:
        self.closed = True


def event(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> bytes:
    body = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **top}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


ROLE = event({"role": "assistant", "content": ""}, model="m")
HELLO = event({"content": "Hello"})
WORLD = event({"content": " world"})
FINISH = event({}, "stop")
DONE = b"data: [DONE]\n\n"


def run(pieces: list[bytes | None]) -> tuple[ChatStream, list[bytes], UpstreamError | None]:
    async def main() -> tuple[ChatStream, list[bytes], UpstreamError | None]:
        stream = ChatStream(Scripted(pieces), "b", "r")
        await stream.open(1.0)
        got = list(stream.first)
        try:
            while (raw := await stream.next(1.0)) is not None:
                got.append(raw)
        except UpstreamError as exc:
            return stream, got, exc
        return stream, got, None

    return asyncio.run(main())


def test_events_split_anywhere_and_the_first_substantive_chunk() -> None:
    whole = ROLE + HELLO + WORLD + FINISH + DONE
    pieces: list[bytes | None] = [whole[i : i + 7] for i in range(0, len(whole), 7)]
    stream, got, failure = run(pieces)
    assert failure is None and stream.done
    assert len(stream.first) == 2  # the role chunk is held until content arrives
    assert len(got) == 4 and stream.finish_at == 3
    assert stream.answer()["choices"][0]["message"]["content"] == "Hello world"
    assert stream.answer()["model"] == "m"


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        ([ROLE, HELLO, None], UpstreamTimeout),
        ([ROLE, HELLO, WORLD], UpstreamUnavailable),
        ([ROLE, HELLO, b'data: {"choices": [\n\n'], UpstreamMalformed),
        ([ROLE, HELLO, b'data: {"error": {"message": "overloaded"}}\n\n'], UpstreamStreamError),
        ([ROLE, HELLO, b"event: error\ndata: {}\n\n"], UpstreamStreamError),
        ([ROLE, HELLO, b'data: {"choi'], UpstreamMalformed),
    ],
)
def test_after_the_first_chunk_each_failure_is_named(
    pieces: list[bytes | None], error: type[UpstreamError]
) -> None:
    stream, _, failure = run(pieces)
    assert type(failure) is error and not stream.done


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        ([], UpstreamUnavailable),
        ([ROLE, None], UpstreamTimeout),
        ([ROLE, DONE], UpstreamMalformed),
        ([b'data: {"error": {"message": "no"}}\n\n'], UpstreamStreamError),
        ([b"data: not json\n\n"], UpstreamMalformed),
    ],
)
def test_before_the_first_chunk_every_failure_raises_and_closes(
    pieces: list[bytes | None], error: type[UpstreamError]
) -> None:
    body = Scripted(pieces)
    with pytest.raises(error):
        asyncio.run(ChatStream(body, "b", "r").open(1.0))
    assert body.closed


def test_sse_events_with_crlf_and_event_names() -> None:
    events = SseEvents()
    assert events.feed(b"event: error\r\ndata: {}\r\n\r\ndata: a") == [(b"{}", True)]
    assert events.pending
    assert events.feed(b"b\n\n: comment\n\n") == [(b"ab", False)]
    assert not events.pending
