"""``stream: true`` on POST /v1/chat/completions: Server-Sent Events in OpenAI's chunk format.

Before the first chunk, every failure moves on to the next tier (``TierChain.open_stream``);
the 200 and the SSE headers go out only once a first chunk is in hand, so a client never sees
a tier that failed. After it, the route's ``stream.on_failure`` policy decides; ``error``: a
gap over ``idle_timeout``, a cut without ``[DONE]``, a malformed chunk or an error event end
the stream with an in-band error event in OpenAI's error shape, then a close without
``[DONE]``: never a clean close of a truncated answer, never a hang; ``continue``: the stream
resumes on a later model tier (``OpenStream.take_over``) and its chunks carry on as the same
stream. A client that goes away
cancels the upstream stream at once. Chunks travel as the upstream sent them; the chunk that
carries the finish reason gets the ``failwell`` field.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from failwell.api.http import ClientDisconnected, Receive, Send
from failwell.api.responses import encode
from failwell.contracts import Answer, ChunkStream, Exchange
from failwell.errors import UpstreamError
from failwell.observe.logging import log
from failwell.routing.route import Route
from failwell.routing.streams import OpenStream

_DONE = b"data: [DONE]\n\n"
_DATA, _END = b"data: ", b"\n\n"


def stream_headers(answer: Answer, request_id: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-failwell-tier", answer.tier.encode()),
        (b"x-failwell-quality", answer.quality.encode()),
        (b"x-failwell-backend", answer.backend.encode()),
        (b"x-request-id", request_id.encode()),
    ]


def error_event(exc: BaseException) -> bytes:
    """An in-band error event in OpenAI's error shape: what ended the stream, and where."""
    if isinstance(exc, UpstreamError):
        kind, message = exc.kind, f"the stream failed mid-way ({exc.kind}): {exc.message}"
    else:
        kind, message = "internal", "the stream failed mid-way; see the gateway log"
    error = {"message": message, "type": "server_error", "code": f"stream_{kind}", "param": None}
    return b"data: %s\n\n" % encode({"error": error})


async def _client_gone(receive: Receive, stream_task: asyncio.Task[Any]) -> None:
    """Cancel the streaming task when the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stream_task.cancel()
            return


async def stream_chat(
    route: Route, inputs: dict[str, Any], receive: Receive, send: Send, ex: Exchange
) -> None:
    """Answer a chat request as a stream; the caller holds the admission slot."""
    opened = await route.open_stream(inputs, ex.request_id, "openai", ex.upstream_headers)
    answer = ex.answer = opened.answer
    task = asyncio.current_task()
    assert task is not None
    watch = asyncio.get_running_loop().create_task(_client_gone(receive, task))
    failure: UpstreamError | None = None
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": stream_headers(answer, ex.request_id),
            }
        )
        failure = await _relay(opened, route.config.stream.idle_timeout, send, answer)
    except asyncio.CancelledError:
        if not watch.done() or watch.cancelled():  # not by the client leaving: shutdown
            raise
        task.uncancel()
        ex.error = "client_disconnected"
        raise ClientDisconnected() from None
    finally:
        watch.cancel()
        opened.end(failure)
    if failure is not None:
        ex.error = f"stream_{failure.kind}"


async def _relay(
    opened: OpenStream, idle: float, send: Send, answer: Answer
) -> UpstreamError | None:
    """Send the stream's chunks as they come, and those of any stream that takes over from it
    (``continue``); how it ended (None: complete)."""
    stream = opened.stream
    try:
        while True:
            try:
                await _stream(opened, stream, idle, send, answer)
                break
            except UpstreamError as exc:
                taken = await opened.take_over(exc)
                if taken is None:
                    raise
                stream = taken
    except UpstreamError as exc:
        await send({"type": "http.response.body", "body": error_event(exc), "more_body": False})
        return exc
    except Exception as exc:  # a bug must not leave a stream open or pass as complete
        log.error("stream_failed", exc_info=exc)
        await send({"type": "http.response.body", "body": error_event(exc), "more_body": False})
        return None
    await send({"type": "http.response.body", "body": _DONE, "more_body": False})
    return None


async def _stream(
    opened: OpenStream, stream: ChunkStream, idle: float, send: Send, answer: Answer
) -> None:
    """Send one upstream stream's chunks until it completes (or raises). Chunks already in
    hand when one arrives go out with it in one write: the client gets the same bytes in
    fewer writes (CPU per chunk under load) and never later than one by one."""
    gaps = opened.gaps()
    relabel = opened.relabel if answer.resumed else None  # a stream that took over
    parts: list[bytes] = []
    index = 0
    for raw in stream.first:
        index = _frame(parts, raw, index, stream, answer, relabel)
    await _flush(send, parts)
    last = time.perf_counter()
    while (more := await stream.next(idle)) is not None:
        if gaps is not None:
            now = time.perf_counter()
            gaps.observe(now - last)
            last = now
        index = _frame(parts, more, index, stream, answer, relabel)
        try:
            while stream.buffered:
                more = await stream.next(idle)  # in hand: no wait
                if more is None:
                    break
                if gaps is not None:
                    gaps.observe(0.0)
                index = _frame(parts, more, index, stream, answer, relabel)
        except UpstreamError:
            await _flush(send, parts)  # the chunks before the failure, then its error event
            raise
        await _flush(send, parts)
        if more is None:
            return


def _frame(
    parts: list[bytes],
    raw: bytes,
    index: int,
    stream: ChunkStream,
    answer: Answer,
    relabel: Callable[[bytes], bytes] | None,
) -> int:
    """Append one chunk's event to ``parts`` (relabelled as part of the first stream when it
    comes from one that took over); the next chunk's index."""
    if relabel is not None:
        raw = relabel(raw)
    if index == stream.finish_at and raw.endswith(b"}"):  # the finish names who answered
        labels = {
            "tier": answer.tier,
            "quality": answer.quality,
            "backend": answer.backend,
            "tiers": answer.tiers,
            "resumed": answer.resumed,
        }
        raw = b'%s,"failwell":%s}' % (raw[:-1], encode(labels))
    parts += (_DATA, raw, _END)
    return index + 1


async def _flush(send: Send, parts: list[bytes]) -> None:
    if parts:
        body = b"".join(parts)
        parts.clear()
        await send({"type": "http.response.body", "body": body, "more_body": True})
