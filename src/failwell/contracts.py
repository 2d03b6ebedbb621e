"""The shared contracts: the values and call signatures every layer composes through.

This module sits at the bottom of the house (it imports only ``errors`` and the deadline
value), so the edge, the tier chain, the adapters and every control plane can name the same
types without importing each other:

- ``Request`` travels the tier chain; an ``Adapter`` turns it into a ``Result``;
- the chain labels the winning result as an ``Answer``;
- the edge records one ``Exchange`` per HTTP request, which ``Observer``\\s see when it ends;
- a ``Service`` is a long-lived task beside the request path; ``AdminCall`` is one call of
  the admin API, and an ``AdminRoute`` is how a part offers a handler for one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import msgspec

from failwell.errors import InvalidInput, TierFailure
from failwell.resilience.deadline import Deadline


class Request(msgspec.Struct):  # built in C: no Python __init__ frame per request
    """One inference request as it travels the tier chain."""

    route: str
    inputs: dict[str, Any]
    deadline: Deadline
    request_id: str = ""
    front_end: str = "predict"
    schema: Mapping[str, str] = msgspec.field(default_factory=dict)  # the route's input types
    # propagated upstream (traceparent)
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    needs: frozenset[str] = frozenset()  # what the answering tier must support ("tools", ...)


class Result(msgspec.Struct):  # built in C: no Python __init__ frame per request
    outputs: Any
    model_version: str | None = None


class Adapter(Protocol):
    """The one seam every backend sits behind: an async call (request in, result or a failwell
    error out) plus close. Pools, breakers and retries wrap it; they never reach inside."""

    async def call(self, request: Request, timeout: float) -> Result:
        """Answer within ``timeout`` seconds or raise an ``UpstreamError``."""
        ...

    async def close(self) -> None: ...


class ChunkStream(Protocol):
    """A streamed chat answer whose first substantive chunk is in hand (``first``: the chunks'
    JSON bytes up to it). ``next`` gives the following chunks, ``None`` once complete, or
    raises an ``UpstreamError`` (a stall over ``idle`` seconds, a cut, a malformed chunk, an
    error event); ``answer`` is what was assembled so far; ``close`` lets the upstream go.
    ``done`` is true once the upstream said the stream is complete; ``buffered`` while the
    next chunk is already in hand (``next`` will not wait), so the edge can send several
    chunks in one write."""

    first: list[bytes]
    done: bool
    finish_at: int | None  # the index of the chunk that carries the finish reason, once known

    @property
    def buffered(self) -> bool: ...

    async def next(self, idle: float) -> bytes | None: ...

    def answer(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class StreamingAdapter(Adapter, Protocol):
    """An adapter that can also stream: ``stream`` returns once the first substantive chunk
    is in hand, within ``timeout`` seconds, or raises an ``UpstreamError``."""

    async def stream(self, request: Request, timeout: float) -> ChunkStream: ...


class Answer(msgspec.Struct):  # built in C: no Python __init__ frame per request
    """What the tier chain returns: the outputs and where they came from."""

    outputs: Any
    tier: str
    quality: str
    backend: str
    model_version: str | None
    latency: float
    tier_index: int
    replica: str | None = None
    age: float | None = None
    failures: list[TierFailure] = msgspec.field(default_factory=list)
    # A stream: every tier whose chunks reached the client, in order (``latency`` is then the
    # time to the first chunk), and whether the stream resumed on a later tier.
    tiers: list[str] | None = None
    resumed: bool = False
    # A batch answered row by row (``fallback: rows``): the tier that answered each row, in
    # order (``tier`` and ``quality`` are then the last tier used, the lowest quality).
    row_tiers: list[str] | None = None


class Exchange(msgspec.Struct):  # built in C: no Python __init__ frame per request
    """One request/response exchange at the edge: what the edge reads from the request's
    headers (request id, trace context), what the front end learns (route, inputs, answer)
    and how it ended."""

    request_id: str
    upstream_headers: dict[str, str]  # propagated to upstreams
    path: str = ""
    started: float = msgspec.field(default_factory=time.time)  # wall clock
    front_end: str = ""
    route: str | None = None
    inputs: dict[str, Any] | None = None
    answer: Answer | None = None
    status: int = 0
    error: str | None = None  # the error kind when the exchange failed
    caller: str | None = None  # the caller's identity, when known


class Service(Protocol):
    """A long-lived task beside the request path (prober, log writer, SLO evaluator ...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


Observer = Callable[[Exchange], None]  # sees every finished exchange, after its response
AuditSink = Callable[[str, dict[str, Any], str | None], None]  # (action, detail, caller)
BeforeRespond = Callable[[Exchange], Awaitable[None]]  # may raise a FailwellError
ReadinessCheck = Callable[[], dict[str, dict[str, Any]]]  # name → {"ok": bool, ...}


@dataclass(slots=True)
class AdminCall:
    """One call of the admin API (a path under /admin/)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    exchange: Exchange

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}", status=400) from None


AdminHandler = Callable[[AdminCall], Awaitable[tuple[int, Any]]]
# Answers an admin call another process of the fleet passed on (a rollout's start or abort):
# the reply to send back.
CallAnswer = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class AdminRoute(NamedTuple):
    """A handler a part offers for ``METHOD /admin/...``; the composition root mounts it."""

    method: str
    path: str
    handler: AdminHandler


class Leadership(Protocol):
    """Whether this process runs the fleet's control loops now (one process of a fleet does).

    A loop that must run once per fleet (prober, canaries, SLO alerts, rollouts, drift judging,
    a trainer ...) asks ``leading``; the composition root starts and stops whole services on
    ``on_change``. A single gateway with no fleet always leads."""

    @property
    def leading(self) -> bool: ...

    def on_change(self, callback: Callable[[bool], None]) -> None: ...
