"""Streamed chat answers for the demo model server: Server-Sent Events in OpenAI's chunk format,
token by token with a realistic gap, and the stream faults ``/_control`` selects.

    stream_stall      after ``after`` chunks, stop sending (the connection stays open)
    stream_cut        after ``after`` chunks, drop the connection (no ``[DONE]``)
    stream_malformed  after ``after`` chunks, send a chunk that is not JSON
    stream_error      after ``after`` chunks, send an error event in OpenAI's error shape and
                      close without ``[DONE]``

With ``after: 0`` each fault hits before the first chunk. Non-streaming requests are answered
normally under these modes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import msgspec
from aiohttp import web

from failwell.demo.faults import Fault, FaultMode

_encode = msgspec.json.Encoder().encode
STREAM_FAULTS = frozenset(
    {
        FaultMode.STREAM_STALL,
        FaultMode.STREAM_CUT,
        FaultMode.STREAM_MALFORMED,
        FaultMode.STREAM_ERROR,
    }
)


def chunks(answer: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """The chunks streaming ``answer`` (a chat completion): the role, one chunk per word of the
    content (or the tool calls in one chunk), the finish reason, then the usage if asked."""
    head = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
        "system_fingerprint": answer.get("system_fingerprint"),
    }
    choice = answer["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {**head, "choices": choices}

    yield chunk({"role": "assistant", "content": ""})
    if message.get("tool_calls"):
        calls = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
        yield chunk({"tool_calls": calls})
    else:
        words = (message.get("content") or "").split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**head, "choices": [], "usage": answer["usage"]}


async def stream_answer(
    request: web.Request, answer: dict[str, Any], body: dict[str, Any], fault: Fault, gap: float
) -> web.StreamResponse:
    """Send ``answer`` as a stream, ``gap`` seconds between chunks, applying a stream fault."""
    options = body.get("stream_options")
    usage = isinstance(options, dict) and options.get("include_usage") is True
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
    )
    await response.prepare(request)
    mode = fault.mode if fault.mode in STREAM_FAULTS else None
    for sent, chunk in enumerate(chunks(answer, usage)):
        if mode is not None and sent == fault.after:
            return await _fail(request, response, mode)
        if sent:
            await asyncio.sleep(gap)
        await response.write(b"data: %s\n\n" % _encode(chunk))
    if mode is not None:  # the fault comes after the last chunk
        return await _fail(request, response, mode)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _fail(
    request: web.Request, response: web.StreamResponse, mode: FaultMode
) -> web.StreamResponse:
    if mode is FaultMode.STREAM_MALFORMED:
        await response.write(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n')
    elif mode is FaultMode.STREAM_ERROR:  # an error event, then a close without [DONE]
        error = {"message": "injected stream error", "type": "server_error", "code": None}
        await response.write(b"data: %s\n\n" % _encode({"error": error}))
        await response.write_eof()
        return response
    if mode is FaultMode.STREAM_CUT:
        if request.transport is not None:
            request.transport.abort()
        return response
    await asyncio.sleep(3600)  # stall (or nothing after the broken chunk) until cancelled
    return response
