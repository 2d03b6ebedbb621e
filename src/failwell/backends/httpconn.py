"""One keep-alive HTTP/1.1 connection to an upstream: writes a request, parses its response
with httptools, and resolves a future with (status, body), or hands a 200's body to a
``BodyQueue`` as it arrives. The pool and the error translation live in ``backends/http.py``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

import httptools

from failwell.errors import UpstreamMalformed

COPY_BELOW = 64 * 1024  # bodies smaller than this (all parts) are joined to the head: one write
# A request body: bytes, or parts written one after the other (large tensors, not copied).
Body = bytes | Sequence[bytes | memoryview]


class Closed(Exception):
    """The connection closed before a whole response arrived."""


class BodyQueue:
    """A streamed response body: the parser pushes, ``StreamBody.read`` waits."""

    __slots__ = ("chunks", "ended", "waiter")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.ended = False
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, data: bytes) -> None:
        self.chunks.append(data)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()


class Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_queue",
        "_deadline",
        "_length_known",
        "_parser",
        "_status",
        "_stream",
        "_timer",
        "_waiter",
        "closed",
        "header_length",
        "keep_alive",
        "loop",
        "retry_after",
        "transport",
    )

    def __init__(self) -> None:
        # built by loop.create_connection; asked once here, not per request (CPython 3.11
        # asks the kernel for its pid on every get_running_loop)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._deadline = 0.0  # the waiter's, on the loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._body: list[bytes] = []
        self._status = 0
        self._length_known = False
        self.header_length: bytes | None = None  # a v2 answer's Inference-Header-Content-Length
        self.retry_after: bytes | None = None
        self._stream: BodyQueue | None = None  # set while a 200's body streams
        self._body_queue: BodyQueue | None = None  # a streamed request waiting for its head
        self.closed = False
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamMalformed(f"invalid HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self._stream is not None:
            self._stream.end()  # a cut is told from an end by the stream's own framing
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._status and not self._length_known:  # a body delimited by the close
                waiter.set_result((self._status, b"".join(self._body)))
            else:
                waiter.set_exception(Closed("connection closed mid-response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"content-length" or lname == b"transfer-encoding":
            self._length_known = True
        elif lname == b"inference-header-content-length":
            self.header_length = value
        elif lname == b"retry-after":
            self.retry_after = value

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status == 200 and self._body_queue is not None:
            self._stream, self._body_queue = self._body_queue, None
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result((200, b""))

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.push(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        if self._stream is not None:
            self._stream.end()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, b"".join(self._body)))

    # use
    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(
        self, head: bytes, body: Body, deadline: float, stream: BodyQueue | None = None
    ) -> asyncio.Future[tuple[int, bytes]]:
        """Write a request; the future gives (status, body), or raises ``TimeoutError`` if
        the head and body have not come by ``deadline`` (the loop's clock). With ``stream``,
        a 200's future resolves at the end of its head and the body goes to ``stream`` as it
        arrives."""
        assert self.transport is not None
        self._body_queue, self._stream = stream, None
        self._body = []
        self._status = 0
        self._length_known = False
        self.header_length = None
        self.retry_after = None
        self._waiter = self.loop.create_future()
        self._deadline = deadline
        # One timer per connection rather than one per request (in uvloop a timer made and
        # cancelled is about 9k instructions): an armed timer that would fire at or before
        # this deadline stays, and moves on to it when it fires.
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._expire)
        parts = (body,) if isinstance(body, bytes) else body
        if sum(len(part) for part in parts) < COPY_BELOW:  # one write, one syscall
            self.transport.write(b"".join((head, *parts)))
        else:  # no copy of a large body: the head, then each part as it is (one writev)
            self.transport.writelines((head, *parts))
        return self._waiter

    def stream_done(self) -> None:
        """The streamed body was read to its end: the connection can serve another request."""
        self._stream = None

    def _expire(self) -> None:
        """The deadline timer: fail a waiter whose deadline has passed; wait on for one
        whose deadline is later (a request sent since the timer was armed)."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # the next request arms the timer again
        if self._deadline <= self.loop.time():
            waiter.set_exception(TimeoutError())
        else:
            self._timer = self.loop.call_at(self._deadline, self._expire)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()
