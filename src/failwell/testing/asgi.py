"""Drive an ASGI app in-process, for unit tests of the edge: one request in, the response out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from failwell.api.http import Message, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def asgi_call(
    app: Any,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    chunk: int = 0,
    client: tuple[str, int] | None = None,
) -> Response:
    """Send one request to ``app``; ``chunk`` > 0 delivers the body in pieces of that size;
    ``client`` is the peer address (none: an in-process caller)."""
    size = chunk or max(1, len(body))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    sent: list[Message] = []

    async def receive() -> Message:
        piece = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers or [],
        "query_string": b"",
        "client": client,
    }
    call_receive: Receive = receive
    call_send: Send = send
    await app(scope, call_receive, call_send)
    start = sent[0]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return Response(int(start["status"]), dict(start["headers"]), payload)
