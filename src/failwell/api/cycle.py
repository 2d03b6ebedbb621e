"""uvicorn's request/response cycle, leaner for the common case.

- **A whole response** (a head with Content-Length, then its one body): the head is held and
  written with the body, one write (one syscall, one packet) rather than two, and the header
  names and values are checked with one search each rather than two per header. Everything else
  (a streamed or chunked body, HEAD, an access log, a paused transport) goes uvicorn's way,
  unchanged.
- **Receiving a body that is all in** does not wait on the message event, and a read that is
  not paused is not resumed.
- **The message event** is a ``Signal``: what uvicorn asks of an ``asyncio.Event``, at less
  cost to make and to set.

``api/protocol.py`` builds one of these for each request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

if TYPE_CHECKING:
    from failwell.api.protocol import Protocol

JOIN_BELOW = 64 * 1024  # a larger body is written after its head, not copied onto it
# The bytes uvicorn's HEADER_RE and HEADER_VALUE_RE refuse, for bytes.translate: deleting them
# is a table lookup per byte, where a regex character class is a walk of its ranges per byte.
BAD_IN_NAME = bytes([*range(0x20), 0x7F]) + b'()<>@,;:[]={} \\"'
BAD_IN_VALUE = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])


class Signal:
    """``asyncio.Event``'s ``set``, ``clear``, ``wait`` and ``is_set``: a flag and the futures
    of its waiters (usually none: a body is all in before the application asks for it)."""

    __slots__ = ("loop", "value", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.value = False
        self.waiters: list[asyncio.Future[bool]] = []

    def is_set(self) -> bool:
        return self.value

    def set(self) -> None:
        if not self.value:
            self.value = True
            for waiter in self.waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self.value = False

    async def wait(self) -> bool:
        if self.value:
            return True
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self.waiters.remove(waiter)


class Cycle(RequestResponseCycle):
    held: bytes | None = None  # the response's head, not yet written
    message_event: Signal  # type: ignore[assignment]

    def __init__(self, protocol: Protocol, scope: Any, keep_alive: bool) -> None:
        # RequestResponseCycle.__init__'s assignments, from the protocol it is built for
        self.scope = scope
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.logger = protocol.logger
        self.access_logger = protocol.access_logger
        self.access_log = protocol.access_log
        self.default_headers = protocol.server_state.default_headers
        self.message_event = Signal(protocol.loop)
        self.on_response = protocol.on_response_complete
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = protocol.expect_100_continue
        self.body = bytearray()
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding = None
        self.expected_content_length = 0

    async def receive(self) -> Any:
        """uvicorn's ``receive``, without a wait or a resume that would do nothing."""
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            if self.flow.read_paused:
                self.flow.resume_reading()
            event = self.message_event
            if not event.value:
                await event.wait()
            event.value = False
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        message = {"type": "http.request", "body": bytes(self.body), "more_body": self.more_body}
        self.body = bytearray()
        return message

    def body_in(self) -> bytes | None:
        """What ``receive`` would give now, without a message: the request's body when all
        of it is in and nothing is owed first (a ``100 Continue``); None for any other (call
        ``receive``)."""
        if (
            self.more_body
            or self.waiting_for_100_continue
            or self.disconnected
            or self.response_complete
        ):
            return None
        if self.flow.read_paused:
            self.flow.resume_reading()
        self.message_event.value = False
        body = bytes(self.body)
        self.body = bytearray()
        return body

    async def send(self, message: Any) -> None:
        head = self.held
        if head is None:
            if message["type"] == "http.response.start" and self._may_hold():
                self.held = self._head(message["status"], message.get("headers", ()))
                if self.held is not None:  # None: not a whole response, uvicorn writes it
                    self.response_started = True
                    self.waiting_for_100_continue = False
                    return
            await super().send(message)
            return
        self.held = None
        body = message.get("body", b"")
        if (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and len(body) == self.expected_content_length
            and len(body) < JOIN_BELOW
        ):
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if not self.disconnected:
                self._write_whole(head + body)
            return
        if not self.disconnected:
            self.transport.write(head)
        await super().send(message)

    def respond(self, status: int, headers: Any, body: bytes) -> bool:
        """A whole response (``headers`` with its Content-Length) written at once, without
        ASGI messages; False, with nothing written, for one that cannot go this way (the
        same cases ``send`` leaves to uvicorn): send it as messages."""
        if self.held is not None or len(body) >= JOIN_BELOW or not self._may_hold():
            return False
        head = self._head(status, headers)
        if head is None or self.expected_content_length != len(body):
            return False
        self.response_started = True
        self.waiting_for_100_continue = False
        self._write_whole(head + body)
        return True

    def _write_whole(self, data: bytes) -> None:
        self.transport.write(data)
        self.expected_content_length = 0
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()

    def _may_hold(self) -> bool:
        return not (
            self.response_started
            or self.access_log
            or self.disconnected
            or self.flow.write_paused
            or self.scope["method"] == "HEAD"
        )

    def _head(self, status: int, headers: Any) -> bytes | None:
        """The head of a response with a Content-Length and nothing that changes the
        connection; None for any other (uvicorn writes it)."""
        if self.default_headers:
            headers = [*self.default_headers, *headers]
        parts = [STATUS_LINE[status]]
        length = -1
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" or name == b"connection":
                return None
            parts += (name, b": ", value, b"\r\n")
        if length < 0:
            return None
        names = b"".join(parts[1::4])
        if len(names.translate(None, BAD_IN_NAME)) != len(names):
            raise RuntimeError("Invalid HTTP header name.")
        values = b"".join(parts[3::4])
        if len(values.translate(None, BAD_IN_VALUE)) != len(values):
            raise RuntimeError("Invalid HTTP header value.")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.chunked_encoding = False
        self.expected_content_length = length
        return b"".join(parts)
