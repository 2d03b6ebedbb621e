"""A streamed answer as the tier chain hands it to the edge.

``LocalStream`` tells a whole answer as chunks (rules, cache, static, a model that does not
stream). ``OpenStream`` is the chain's result for ``stream: true``: the answering tier's
labels, the stream with its first chunk in hand, and ``end`` which the edge calls once,
however the stream ended: it lets the upstream go, gives the replica its verdict (a stall or a
cut counts against it), fills in the assembled answer and stores a complete tier-1 answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge, Histogram

from failwell.contracts import Answer, ChunkStream, Request
from failwell.errors import UpstreamError
from failwell.observe.metrics import Metrics
from failwell.protocols.sse import completion_chunks
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

    def answer(self) -> dict[str, Any]:
        return self._completion

    def close(self) -> None:
        pass


Store = Callable[[Request, Any, str | None], None]


@dataclass(slots=True)
class OpenStream:
    answer: Answer  # the answering tier's labels; ``outputs`` is filled in at the end
    stream: ChunkStream
    request: Request
    replica: Replica | None = None
    store: Store | None = None
    gauge: Gauge | None = None
    metrics: Metrics | None = None

    def end(self, failure: UpstreamError | None) -> None:
        """The stream is over: complete (``failure`` None and ``stream.done``), failed, or
        left by its client (neither)."""
        stream = self.stream
        stream.close()
        answer = self.answer
        answer.outputs = stream.answer()
        if self.replica is not None:
            if failure is not None or stream.done:
                Pool.settle(self.replica, failure)
            else:
                Pool.abandon(self.replica)
        if failure is None and stream.done and self.store is not None:
            self.store(self.request, answer.outputs, answer.model_version)
        if self.gauge is not None:
            self.gauge.dec()
        if self.metrics is not None:
            if failure is not None:
                outcome = failure.kind
            else:
                outcome = "complete" if stream.done else "client_gone"
            self.metrics.stream_ended(self.request.route, answer.tier, outcome)

    def gaps(self) -> Histogram | None:
        """Where the edge observes the gap between chunks it relays."""
        if self.metrics is None:
            return None
        return self.metrics.stream_gaps(self.request.route, self.answer.tier)
