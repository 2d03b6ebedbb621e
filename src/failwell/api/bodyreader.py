"""The server side of a connection: uvicorn's httptools protocol, with a large request body read
straight into one buffer.

uvicorn hands a body to the application through four copies: uvloop makes a ``bytes`` of each
read, httptools one of the body's part of it, uvicorn appends that to a ``bytearray``, and
``receive`` copies the ``bytearray`` out again; for a 4.3 MB tensor that is a quarter of the
gateway's CPU for the request (``perf``: ``memmove`` under ``on_body`` and ``receive``), plus
a pause and resume of reading every 64 KiB. So a body that announces its length
(``Content-Length``, at least ``DIRECT_FROM`` bytes and at most ``largest``, the largest
``max_body`` of the config) is read from the socket into one preallocated buffer
(``asyncio.BufferedProtocol``), and the request's scope carries it as the ``failwell.body``
extension: ``read_parts`` (``api/http.py``) awaits it instead of ``receive``. Everything else
(the head, small and chunked bodies, pipelining, keep-alive, responses) is uvicorn's own code.

uvloop reads into a buffer only for a protocol that is not an ``asyncio.Protocol``, which
uvicorn's is: so while such a body is read the transport's protocol is a ``_BodyReader``
(``transport.set_protocol``), and uvicorn's again from the byte after it; every other read
goes to uvicorn's protocol as before, at no extra cost (a wrapper around every read cost the
small-field V2 route 6% more instructions per request under callgrind). httptools cannot be
told to skip a body: the body's bytes go around the parser, and the parser, left waiting for
them, is replaced by a fresh one for the connection's next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar, cast

import httptools
import numpy as np
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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

    def take(self, data: bytes) -> None:
        """Body bytes that came through the parser with the head."""
        self.view[self.filled : self.filled + len(data)] = data
        self.filled += len(data)

    def finish(self, complete: bool) -> None:
        if not self.done.done():  # a reader that timed out cancelled it
            self.done.set_result(self.view if complete else None)


class BodyReader(HttpToolsProtocol):
    """uvicorn's protocol, reading a large body into one buffer instead of its ``bytearray``.
    Give ``for_bodies_up_to(n)`` to uvicorn as its ``http``."""

    largest: ClassVar[int] = 0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct: DirectBody | None = None

    @classmethod
    def for_bodies_up_to(cls, largest: int) -> type[BodyReader]:
        return type(cls.__name__, (cls,), {"largest": largest})

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope or self.expect_100_continue:
            return  # an upgrade, or a client waiting to be told to send its body
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                return
        if length is None or not length.isdigit():
            return
        size = int(length)
        if DIRECT_FROM <= size <= self.largest:
            self.direct = direct = DirectBody(size)
            extensions: dict[str, Any] = cast(Any, self.scope).setdefault("extensions", {})
            extensions[EXTENSION] = direct
            # the rest of this read goes on through the parser (on_body); the next reads go
            # around it, into the buffer
            self.transport.set_protocol(_BodyReader(self, direct))

    def on_body(self, body: bytes) -> None:
        if self.direct is not None:
            self.direct.take(body)  # the part that came with the head
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        direct, self.direct = self.direct, None
        if direct is not None:  # whole, through the parser or around it
            direct.finish(True)
            self.transport.set_protocol(self)  # reads come here again
        super().on_message_complete()

    def body_read(self) -> None:
        """The direct body is whole: the parser (still waiting for it) makes way for a fresh
        one, and the request is complete."""
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # as uvicorn does (httptools >= 0.6.3)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        direct, self.direct = self.direct, None
        if direct is not None:
            direct.finish(False)
        super().connection_lost(exc)


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

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def eof_received(self) -> None:
        self.http.eof_received()

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()
