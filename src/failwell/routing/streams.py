"""A streamed answer as the tier chain hands it to the edge.

``LocalStream`` tells a whole answer as chunks (rules, cache, static, a model that does not
stream). ``OpenStream`` is the chain's result for ``stream: true``: the answering tier's
labels, the stream with its first chunk in hand, and ``end`` which the edge calls once,
however the stream ended: it lets the upstream go, gives the replica its verdict (a stall or a
cut counts against it), fills in the assembled answer and stores a complete tier-1 answer.
Under the ``continue`` policy, ``take_over`` resumes a stream that failed mid-way on a later
model tier, with the text so far as an assistant prefix; the client sees one stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace

from failwell.contracts import Answer, ChunkStream, Request
from failwell.errors import FailwellError, UpstreamError
from failwell.observe.metrics import Metrics
from failwell.observe.tally import Buckets, Level
from failwell.protocols.sse import completion_chunks, continued_chunk, decode_chunk
from failwell.routing.pool import Pool, Replica


def include_usage(request: Request) -> bool:
    options = request.inputs.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class LocalStream:
    """A whole completion as a stream: every chunk is in ``first``; the finish is chunk 1."""

    __slots__ = ("_completion", "done", "finish_at", "first")

    def __init__(self, completion: dict[str, Any], usage: bool) -> None:
        self._completion = completion
        self.first = completion_chunks(completion, usage)
        self.finish_at: int | None = 1
        self.done = True

    async def next(self, idle: float) -> bytes | None:
        return None

    @property
    def buffered(self) -> bool:
        return False

    def answer(self) -> dict[str, Any]:
        return self._completion

    def close(self) -> None:
        pass


Store = Callable[[Request, Any, str | None], None]
# Opens a stream on a tier after the given one, for a request with the text so far appended.
Resume = Callable[[Request, int], Awaitable["OpenStream"]]


@dataclass(slots=True)
class OpenStream:
    answer: Answer  # the first chunk's tier's labels; ``outputs`` is filled in at the end
    stream: ChunkStream
    request: Request
    replica: Replica | None = None
    store: Store | None = None
    gauge: Level | None = None
    metrics: Metrics | None = None
    index: int = 0  # the position of the tier streaming now
    tier: str = ""  # the tier streaming now ("": the answer's)
    resume: Resume | None = None  # set when the route's mid-stream policy is ``continue``
    resumes_left: int = 0
    streams: Level | None = None  # the route's open streams
    prefix: str = ""  # the text of the streams this one took over from
    first_id: tuple[str | None, int | None] = (None, None)  # the first stream's id and created

    def __post_init__(self) -> None:
        self.tier = self.tier or self.answer.tier

    async def take_over(self, failure: UpstreamError) -> ChunkStream | None:
        """After a mid-stream failure: the stream that continues it on a later tier (the text
        so far as an assistant prefix), or None when the policy is ``error``, the request has
        tools, no resume is left or no later tier could take it."""
        if self.resume is None or self.resumes_left <= 0 or "tools" in self.request.needs:
            return None
        self.resumes_left -= 1
        text = self.prefix + _content(self.stream.answer())
        if not self.answer.resumed:
            self.first_id = _identity(self.stream.first)
        request = self.request
        messages = [*request.inputs.get("messages", ()), {"role": "assistant", "content": text}]
        resumed = replace(request, inputs={**request.inputs, "messages": messages})
        self._let_go(failure)
        try:
            taken = await self.resume(resumed, self.index)
        except FailwellError:
            return None
        self._failed(failure, "resumed")
        self.stream, self.replica, self.index = taken.stream, taken.replica, taken.index
        self.tier = taken.answer.tier
        self.prefix, self.store = text, None  # a stitched answer is no tier-1 answer to cache
        answer = self.answer
        answer.resumed = True
        answer.tiers = [*(answer.tiers or ()), self.tier]
        return taken.stream

    def relabel(self, raw: bytes) -> bytes:
        """A chunk of a stream that took over, as part of the one stream the client sees (the
        first stream's id)."""
        return continued_chunk(raw, *self.first_id)

    def _let_go(self, failure: UpstreamError) -> None:
        """Close the failed stream and give its replica the verdict."""
        self.stream.close()
        if self.replica is not None:
            Pool.settle(self.replica, failure)
            self.replica = None

    def _failed(self, failure: UpstreamError, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.stream_failed(self.request.route, self.tier, failure.kind, outcome)

    def end(self, failure: UpstreamError | None) -> None:
        """The stream is over: complete (``failure`` None and ``stream.done``), failed, or
        left by its client (neither)."""
        stream = self.stream
        stream.close()
        answer = self.answer
        outputs = stream.answer()
        if self.prefix:
            _set_content(outputs, self.prefix + _content(outputs))
        answer.outputs = outputs
        if self.replica is not None:
            if failure is not None or stream.done:
                Pool.settle(self.replica, failure)
            else:
                Pool.abandon(self.replica)
            self.replica = None
        if failure is None and stream.done and self.store is not None:
            self.store(self.request, answer.outputs, answer.model_version)
        for gauge in (self.gauge, self.streams):
            if gauge is not None:
                gauge.dec()
        if self.metrics is not None:
            if failure is not None:
                outcome = failure.kind
                self._failed(failure, "error")
            else:
                outcome = "complete" if stream.done else "client_gone"
            self.metrics.stream_ended(self.request.route, self.tier, outcome)

    def gaps(self) -> Buckets | None:
        """Where the edge observes the gap between chunks it relays (the tier streaming now)."""
        if self.metrics is None:
            return None
        return self.metrics.stream_gaps(self.request.route, self.tier)


def _content(completion: dict[str, Any]) -> str:
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def _set_content(completion: dict[str, Any], text: str) -> None:
    choices = completion.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0].get("message"), dict):
        choices[0]["message"]["content"] = text


def _identity(first: list[bytes]) -> tuple[str | None, int | None]:
    """The id and creation time of the stream whose first chunks are ``first``."""
    for raw in first:
        try:
            chunk = decode_chunk(raw)
        except msgspec.DecodeError:
            continue
        return chunk.id, chunk.created
    return None, None
