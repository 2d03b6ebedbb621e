"""One upstream chat stream: Server-Sent Events read chunk by chunk, each failure named.

``ChatStream.open`` reads until the first substantive chunk (content, a tool call, a refusal,
the finish) is in hand, within ``first_token`` seconds: before it, every failure (a silent
upstream, an empty stream, an error event, a malformed chunk) raises an ``UpstreamError`` and
the caller moves on to another replica or tier; nothing has reached the client yet. After it,
``next(idle)`` gives the following chunks' bytes as they came, ``None`` after ``[DONE]``, and
raises on a gap over ``idle`` seconds (``UpstreamTimeout``), a cut without ``[DONE]``
(``UpstreamUnavailable``), a malformed chunk (``UpstreamMalformed``) or an error event
(``UpstreamStreamError``). It assembles the answer (text, finish reason, usage) as it goes,
for the log and the cache.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import msgspec

from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamStreamError,
    UpstreamUnavailable,
)
from failwell.protocols.sse import DONE, Chunk, SseEvents, decode_chunk


class BodyReader(Protocol):
    """A response body as it arrives (``HttpUpstream.open_stream``)."""

    async def read(self, timeout: float) -> bytes | None:
        """The next bytes, ``None`` at the body's end; raises UpstreamTimeout after
        ``timeout`` seconds without bytes, UpstreamUnavailable when the connection drops."""
        ...

    def close(self) -> None: ...


class ChatStream:
    __slots__ = (
        "_body",
        "_count",
        "_events",
        "_ready",
        "_substantive",
        "backend",
        "done",
        "finish",
        "finish_at",
        "first",
        "model",
        "replica",
        "text",
        "tool_calls",
        "usage",
    )

    def __init__(self, body: BodyReader, backend: str, replica: str) -> None:
        self._body = body
        self._events = SseEvents()
        self._ready: deque[tuple[bytes, bool]] = deque()
        self.backend, self.replica = backend, replica
        self.first: list[bytes] = []  # chunks up to and including the first substantive one
        self.text: list[str] = []
        self.tool_calls = False
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.done = False
        self._substantive = False
        self._count = 0  # chunks read
        self.finish_at: int | None = None  # the index of the chunk that carried the finish

    def _error(self, kind: type[UpstreamError], message: str) -> UpstreamError:
        return kind(message, backend=self.backend, replica=self.replica)

    async def open(self, first_token: float) -> ChatStream:
        """Read up to the first substantive chunk within ``first_token`` seconds."""
        try:
            while True:
                raw = await self._chunk(first_token, before_first=True)
                if raw is None:
                    raise self._error(UpstreamMalformed, "the stream ended before any content")
                self.first.append(raw)
                if self._substantive:
                    return self
        except BaseException:
            self.close()
            raise

    async def next(self, idle: float) -> bytes | None:
        """The next chunk's bytes, or ``None`` once the upstream said ``[DONE]``."""
        return await self._chunk(idle, before_first=False)

    @property
    def buffered(self) -> bool:
        """Whether the next event is already read (``next`` returns without waiting)."""
        return bool(self._ready) and not self.done

    async def _chunk(self, timeout: float, before_first: bool) -> bytes | None:
        while not self._ready:
            if self.done:
                return None
            data = await self._body.read(timeout)
            if data is None:
                if self._events.pending:
                    raise self._error(UpstreamMalformed, "the stream ended inside an event")
                raise self._error(UpstreamUnavailable, "the stream was cut before [DONE]")
            self._ready.extend(self._events.feed(data))
        payload, error_event = self._ready.popleft()
        if payload == DONE:
            self.done = True
            self._ready.clear()
            return None
        try:
            chunk = decode_chunk(payload)
        except msgspec.DecodeError as exc:
            raise self._error(UpstreamMalformed, f"a malformed chunk: {exc}") from None
        if error_event or chunk.error is not None:
            raise self._error(UpstreamStreamError, f"an error event: {_message(chunk.error)}")
        self._read(chunk)
        self._count += 1
        return payload

    def _read(self, chunk: Chunk) -> None:
        if chunk.model is not None and self.model is None:
            self.model = chunk.model
        text = chunk.text
        if text:
            self.text.append(text)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.choices:
            first = chunk.choices[0]
            if first.finish_reason is not None and self.finish is None:
                self.finish = first.finish_reason
                self.finish_at = self._count
            if first.delta is not None and first.delta.tool_calls:
                self.tool_calls = True
        if not self._substantive and chunk.substantive:
            self._substantive = True

    def answer(self) -> dict[str, Any]:
        """The assembled answer: a chat completion (tool calls are not assembled)."""
        message = {"role": "assistant", "content": "".join(self.text)}
        out: dict[str, Any] = {
            "object": "chat.completion",
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": self.finish, "logprobs": None}
            ],
        }
        if self.usage is not None:
            out["usage"] = self.usage
        return out

    def close(self) -> None:
        self._body.close()


def _message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:200]
