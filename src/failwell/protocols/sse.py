"""Server-Sent Events in OpenAI's chat-completion chunk format: split a byte stream into
events, and read each chunk for what failwell needs (is it content, the finish, usage, an
error?) while the chunk's bytes travel on unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec

DONE = b"[DONE]"


class SseEvents:
    """Cuts a byte stream into the ``data`` payloads of its events. ``feed`` returns the
    payloads completed by the bytes given (an event ends with a blank line); an ``event:``
    line naming ``error`` marks its payload as an error."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """(payload, is an error event) of each event completed by ``data``."""
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        out = []
        for event in events:
            if event.startswith(b"data:") and b"\n" not in event:  # the usual one-line event
                out.append((event[5:].lstrip(b" "), False))
                continue
            lines, error = [], False
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    lines.append(line[5:].lstrip(b" "))
                elif line.startswith(b"event:"):
                    error = line[6:].strip() == b"error"
            if lines:
                out.append((b"\n".join(lines), error))
        return out

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished event are held."""
        return bool(self._buffer.strip())


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[Any] | None = None
    refusal: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class Chunk(msgspec.Struct):
    """What failwell reads of one chunk; the chunk's bytes are forwarded as they came."""

    choices: list[_ChunkChoice] = []
    usage: dict[str, Any] | None = None
    error: Any = None
    model: str | None = None
    id: str | None = None
    created: int | None = None

    @property
    def text(self) -> str | None:
        """The content of the first choice's delta, when it has some."""
        if self.choices:
            delta = self.choices[0].delta
            if delta is not None:
                return delta.content
        return None

    @property
    def finish(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def substantive(self) -> bool:
        """Content, a tool call, a refusal or the finish: what counts as a first token (a
        role-only chunk does not)."""
        for choice in self.choices:
            if choice.finish_reason is not None:
                return True
            delta = choice.delta
            if delta is not None and (delta.content or delta.tool_calls or delta.refusal):
                return True
        return False


decode_chunk = msgspec.json.Decoder(Chunk).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def continued_chunk(raw: bytes, stream_id: str | None, created: int | None) -> bytes:
    """A chunk of a stream that took over from another, as part of that one stream: the first
    stream's ``id`` and ``created``, and no second ``role`` (the rest as the upstream sent it,
    its ``model`` included: it names the model that wrote this part)."""
    chunk = _decode_object(raw)
    if stream_id is not None:
        chunk["id"] = stream_id
    if created is not None:
        chunk["created"] = created
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            delta.pop("role", None)
    return _encode(chunk)


_encode = msgspec.json.Encoder().encode


def completion_chunks(completion: dict[str, Any], include_usage: bool) -> list[bytes]:
    """A whole chat completion told as chunks: the role with the content (or the tool calls),
    the finish reason, then the usage when asked. The finish is the second chunk."""
    head = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    found = choice.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        delta["tool_calls"] = [
            {"index": i, **c} if isinstance(c, dict) else c for i, c in enumerate(calls)
        ]
    if message.get("refusal") is not None:
        delta["refusal"] = message["refusal"]
    finish = choice.get("finish_reason") or "stop"
    chunks: list[dict[str, Any]] = [
        {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
    ]
    if include_usage:
        usage = completion.get("usage") or {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
        }
        chunks.append({**head, "choices": [], "usage": usage})
    return [_encode(c) for c in chunks]
