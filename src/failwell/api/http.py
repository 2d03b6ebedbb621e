"""Minimal ASGI plumbing for the data plane: read a bounded body, send a response."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from types import MethodType
from typing import Any

from failwell.api.bodyreader import DIRECT_FROM, EXTENSION, DirectBody
from failwell.api.cycle import Cycle
from failwell.api.limits import BodyLimits
from failwell.errors import BodyTooLarge, SlowClient

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientDisconnected(Exception):
    """The client went away before its body arrived."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def read_body(
    scope: Scope, receive: Receive, limits: BodyLimits, max_body: int | None = None
) -> bytes:
    """The whole body, within ``limits``: size (413; ``max_body``, a route's own limit, in
    place of the gateway's), time to arrive (408), and for JSON bodies nesting depth and
    element count (400). A V2 binary body's tensors are not JSON: its decoder bounds the JSON
    header."""
    body = _whole(scope, await read_parts(scope, receive, limits, max_body), limits)
    return body if type(body) is bytes else bytes(body)


async def read_whole(
    scope: Scope, receive: Receive, limits: BodyLimits, max_body: int | None = None
) -> bytes | memoryview:
    """``read_body``, without copying a body the server read into one buffer."""
    return _whole(scope, await read_parts(scope, receive, limits, max_body), limits)


def _whole(
    scope: Scope, chunks: list[bytes | memoryview], limits: BodyLimits
) -> bytes | memoryview:
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if header(scope, b"inference-header-content-length") is None:
        limits.check_json(body)
    return body


async def read_parts(
    scope: Scope, receive: Receive, limits: BodyLimits, max_body: int | None = None
) -> list[bytes | memoryview]:
    """The body in the chunks it arrived in (not joined), or in the one buffer the server
    read it into (``api/bodyreader.py``), within the size and time limits of ``read_body``;
    no JSON checks."""
    limit = limits.max_body if max_body is None else max_body
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"body of {int(length)} bytes is over the {limit}-byte limit")
    chunks: list[bytes | memoryview] = []
    size = 0
    direct: DirectBody | None = None
    if length is not None and length.isdigit() and int(length) >= DIRECT_FROM:
        ref = scope.get("extensions", {}).get(EXTENSION)
        server = None if ref is None else ref()  # api/bodyreader.py's BodyReader
        if server is not None:
            direct = server.read_direct(scope, int(length))
    # A body that is all in already (the common case, a small body in the head's packet)
    # cannot dribble: taken from the server's cycle as it is, with no watch and no message.
    cycle = receive.__self__ if type(receive) is MethodType else None
    if direct is None and type(cycle) is Cycle:
        body = cycle.body_in()
        if body is not None:
            if len(body) > limit:
                raise BodyTooLarge(f"body is over the {limit}-byte limit")
            return [body] if body else []
    watch = limits.watch
    task = watch.begin()
    try:
        if direct is not None:  # Content-Length, within the limit
            whole = await direct.done
            if whole is None:
                raise ClientDisconnected()
            return [whole]
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"body is over the {limit}-byte limit")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if watch.cut_off(task):
            raise SlowClient(f"the body did not arrive within {limits.timeout:g}s") from None
        raise
    finally:
        watch.end(task)
    return chunks


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    # The server's own send (no hook wraps it): its cycle writes the response at once
    cycle = send.__self__ if type(send) is MethodType else None
    if type(cycle) is Cycle and cycle.respond(status, headers, body):
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
