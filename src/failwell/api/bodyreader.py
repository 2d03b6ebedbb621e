"""The server side of a connection: ``api/protocol.py``'s, with a large request body read
straight into one buffer.

uvicorn hands a body to the application through four copies: uvloop makes a ``bytes`` of each
read, httptools one of the body's part of it, uvicorn appends that to a ``bytearray``, and
``receive`` copies the ``bytearray`` out again; for a 4.3 MB tensor that is a quarter of the
gateway's CPU for the request (``perf``: ``memmove`` under ``on_body`` and ``receive``), plus
a pause and resume of reading every 64 KiB.

So each request's scope carries its connection's protocol as the ``failwell.body`` extension,
and ``read_parts`` (``api/http.py``), once the request is admitted and its ``Content-Length``
is within the route's ``max_body``, asks it to read a body of ``DIRECT_FROM`` bytes or more
(``BodyReader.read_direct``): the bytes uvicorn holds already go into one buffer of that length,
and the rest is read from the socket straight after them. The buffer is taken only then, so a
client that sends heads alone makes the gateway hold nothing. A whole response goes out in one
write (``api/cycle.py``). Everything else (the head, small and chunked bodies, pipelining,
keep-alive, streamed responses) is ``api/protocol.py``'s and uvicorn's.

uvloop reads into a buffer only for a protocol that is not an ``asyncio.Protocol``, which
uvicorn's is: so while such a body is read the transport's protocol is a ``_BodyReader``
(``transport.set_protocol``), and uvicorn's again from the byte after it; every other read goes
to uvicorn's protocol as before. httptools cannot be told to skip a body: the body's bytes go
around the parser, and the parser, left waiting for them, is replaced by a fresh one for the
connection's next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

import httptools
import numpy as np

from failwell.api.protocol import Protocol

DIRECT_FROM = 64 * 1024  # smaller bodies: one or two reads through the parser cost little
EXTENSION = "failwell.body"


class DirectBody:
    """A request body being read into one buffer; ``done`` gives it whole (a memoryview), or
    None if the client went away first."""

    __slots__ = ("done", "filled", "view")

    def __init__(self, size: int) -> None:
        # np.empty: no zero-filling of memory about to be overwritten (bytearray(n) would)
        self.view: memoryview = np.empty(size, np.uint8).data
        self.filled = 0
        self.done: asyncio.Future[memoryview | None] = asyncio.get_running_loop().create_future()

    def take(self, data: bytes | bytearray) -> None:
        """Body bytes that came through the parser."""
        self.view[self.filled : self.filled + len(data)] = data
        self.filled += len(data)

    def finish(self, complete: bool) -> None:
        if not self.done.done():  # a reader that timed out cancelled it
            self.done.set_result(self.view if complete else None)


class BodyReader(Protocol):
    """The connection's protocol (give the class to uvicorn as its ``http``), able to read a
    large body into one buffer instead of uvicorn's ``bytearray``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # One per connection, holding the protocol weakly: a scope that held it (or its
        # cycle) strongly would make a reference cycle of every request, left to the garbage
        # collector (callgrind: +10k instructions per small-field V2 request).
        self.extensions[EXTENSION] = weakref.ref(self)

    def read_direct(self, scope: Any, size: int) -> DirectBody | None:
        """Read the rest of the body (``size`` bytes in all, ``DIRECT_FROM`` or more) of the
        request of ``scope`` into
        one buffer; None when it is not this connection's body under way (already whole,
        pipelined behind another, waiting for ``100 Continue``), which ``receive`` then gives
        as usual."""
        cycle = self.cycle
        if (
            cycle is None
            or cycle.scope is not scope
            or not cycle.more_body
            or cycle.waiting_for_100_continue
            or cycle.disconnected
            or self.transport.is_closing()
        ):
            return None
        body = DirectBody(size)
        body.take(cycle.body)  # what came with the head, or before the application asked
        cycle.body = bytearray()
        self.transport.set_protocol(_BodyReader(self, body))
        self.flow.resume_reading()  # uvicorn pauses at 64 KiB held
        return body

    def body_read(self) -> None:
        """A direct body is whole: reads come here again, the parser (still waiting for the
        body) makes way for a fresh one, and the request is complete."""
        self.transport.set_protocol(self)
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # as uvicorn does (httptools >= 0.6.3)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.on_message_complete()


class _BodyReader(asyncio.BufferedProtocol):
    """The transport's protocol while a direct body is read: into its buffer, up to its last
    byte and no further; everything else is passed on to uvicorn's protocol."""

    def __init__(self, http: BodyReader, body: DirectBody) -> None:
        self.http, self.body = http, body

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.body.view[self.body.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        body = self.body
        body.filled += nbytes
        if body.filled == len(body.view):
            self.http.body_read()
            body.finish(True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.body.finish(False)
        self.http.connection_lost(exc)

    def eof_received(self) -> None:
        self.http.eof_received()

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()
