"""In-gateway fault injection: faults on a backend or one of its replicas, expiring by themselves.

    latency    wait before the call: fixed, or drawn from a distribution (uniform, normal,
               exponential); past the attempt's timeout it is a timeout
    error      the replica answers 5xx (``status``)
    hang       no answer until the attempt's timeout
    drop       the connection drops (unavailable)
    malformed  an answer that cannot be decoded
    stream_stall, stream_cut, stream_malformed, stream_error, stream_trickle
               a chat stream that fails after ``after`` chunks (``faults/stream_faults.py``);
               calls that do not stream pass untouched

Each fault applies to a share of calls (``rate``), from now for ``duration``. A
``FaultyAdapter`` wraps every replica's adapter when the gateway is built; with no fault active
it costs one empty-list check per call. An injected fault raises the same failwell error the
adapter raises for the real failure, so breakers, retries and the tier chain react exactly as
they would to it; the message names the fault. Faults on the wire (a real process frozen, a
real socket reset) are the job of process faults and the fault proxy.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.units import Duration
from failwell.contracts import Adapter, ChunkStream, Request, Result, StreamingAdapter
from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from failwell.faults.stream_faults import FaultyStream, stream_failure


class FaultKind(enum.StrEnum):
    LATENCY = "latency"
    ERROR = "error"
    HANG = "hang"
    DROP = "drop"
    MALFORMED = "malformed"
    STREAM_STALL = "stream_stall"
    STREAM_CUT = "stream_cut"
    STREAM_MALFORMED = "stream_malformed"
    STREAM_ERROR = "stream_error"
    STREAM_TRICKLE = "stream_trickle"


STREAM_FAULTS = frozenset(
    {
        FaultKind.STREAM_STALL,
        FaultKind.STREAM_CUT,
        FaultKind.STREAM_MALFORMED,
        FaultKind.STREAM_ERROR,
        FaultKind.STREAM_TRICKLE,
    }
)


class FaultSpec(BaseModel):
    """What a caller asks for (the body of ``POST /admin/faults``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind = Field(
        description="latency, error, hang, drop, malformed; stream_stall, stream_cut, "
        "stream_malformed, stream_error, stream_trickle."
    )
    backend: str = Field(description="The backend the fault applies to.")
    replica: str | None = Field(None, description="One replica of it; all when omitted.")
    duration: Duration = Field(60.0, gt=0, description="How long the fault lasts.")
    rate: float = Field(1.0, gt=0, le=1, description="Share of calls it applies to.")
    latency: Duration = Field(
        0.0, description="latency: the fixed part, or the mean; stream_trickle: each chunk's delay."
    )
    jitter: Duration = Field(
        0.0, description="latency: spread (uniform width, normal sd, exp mean)."
    )
    distribution: Literal["fixed", "uniform", "normal", "exponential"] = Field(
        "fixed", description="latency: how the delay is drawn."
    )
    status: int = Field(500, ge=500, le=599, description="error: the status answered.")
    after: int = Field(
        0, ge=0, description="stream faults: chunks that pass before the fault (0: before any)."
    )

    @model_validator(mode="after")
    def _latency_given(self) -> FaultSpec:
        if self.kind is FaultKind.LATENCY and self.latency <= 0 and self.jitter <= 0:
            raise ValueError("a latency fault needs latency (and/or jitter) above 0")
        if self.kind is FaultKind.STREAM_TRICKLE and self.latency <= 0:
            raise ValueError("a stream_trickle fault needs latency (each chunk's delay) above 0")
        return self


@dataclass(frozen=True, slots=True)
class Fault:
    id: str
    spec: FaultSpec
    started: float  # wall clock
    expires: float  # wall clock

    def matches(self, backend: str, replica: str) -> bool:
        s = self.spec
        return s.backend == backend and (s.replica is None or s.replica == replica)

    def delay(self, rng: random.Random) -> float:
        s = self.spec
        if s.distribution == "uniform":
            value = s.latency + rng.uniform(0.0, s.jitter)
        elif s.distribution == "normal":
            value = rng.gauss(s.latency, s.jitter)
        elif s.distribution == "exponential":
            value = s.latency + (rng.expovariate(1.0 / s.jitter) if s.jitter > 0 else 0.0)
        else:
            value = s.latency
        return max(0.0, value)

    def record(self) -> dict[str, Any]:
        """The fault as plain data (what ``FaultBook.adopt`` takes back)."""
        return {
            "id": self.id,
            "spec": self.spec.model_dump(mode="json"),
            "started": self.started,
            "expires": self.expires,
        }

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec.model_dump(mode="json", exclude_defaults=False),
            "started": self.started,
            "expires": self.expires,
            "remaining_s": round(max(0.0, self.expires - now), 3),
        }


# ("add" or "remove", the fault's record): a change made through this book, not one adopted
FaultListener = Callable[[str, dict[str, Any]], None]


class FaultBook:
    """The active faults of one gateway. Expired faults vanish on the next look.

    ``tag`` ends every id this book makes (a fleet sets it to the instance's name, so ids made
    by different gateways never clash). ``adopt`` and ``discard`` apply another gateway's
    changes without telling the listeners."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, seed: int | None = None) -> None:
        self._clock = clock
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._listeners: list[FaultListener] = []
        self.tag = ""
        self.rng = random.Random(seed)

    def on_change(self, listener: FaultListener) -> None:
        self._listeners.append(listener)

    def _tell(self, event: str, faults: list[Fault]) -> None:
        for fault in faults:
            for listener in self._listeners:
                listener(event, fault.record())

    def add(self, spec: FaultSpec) -> Fault:
        now = self._clock.wall()
        fault = Fault(f"f{next(self._ids)}{self.tag}", spec, now, now + spec.duration)
        self._faults = [*self._faults, fault]
        self._tell("add", [fault])
        return fault

    def remove(self, fault_id: str) -> Fault | None:
        found = self.discard(fault_id)
        if found is not None:
            self._tell("remove", [found])
        return found

    def clear(self, backend: str | None = None) -> list[Fault]:
        gone = [f for f in self.active() if backend is None or f.spec.backend == backend]
        self._faults = [f for f in self._faults if f not in gone]
        self._tell("remove", gone)
        return gone

    def adopt(self, record: dict[str, Any]) -> bool:
        """Add a fault another gateway made (``Fault.record``), unless known or expired."""
        fault = Fault(
            str(record["id"]),
            FaultSpec.model_validate(record["spec"]),
            float(record["started"]),
            float(record["expires"]),
        )
        if fault.expires <= self._clock.wall() or any(f.id == fault.id for f in self._faults):
            return False
        self._faults = [*self._faults, fault]
        return True

    def discard(self, fault_id: str) -> Fault | None:
        """Remove a fault without telling the listeners."""
        found = next((f for f in self._faults if f.id == fault_id), None)
        if found is not None:
            self._faults = [f for f in self._faults if f.id != fault_id]
        return found

    def active(self) -> list[Fault]:
        if self._faults:
            now = self._clock.wall()
            if any(f.expires <= now for f in self._faults):
                self._faults = [f for f in self._faults if f.expires > now]
        return self._faults

    def records(self) -> list[dict[str, Any]]:
        return [f.record() for f in self.active()]

    @property
    def empty(self) -> bool:
        """No fault is armed (expired ones may linger until the next ``active``)."""
        return not self._faults

    def matching(self, backend: str, replica: str) -> list[Fault]:
        if not self._faults:
            return []
        return [f for f in self.active() if f.matches(backend, replica)]

    def now(self) -> float:
        return self._clock.wall()


class FaultyAdapter:
    """Wraps one replica's adapter; applies the book's faults for that replica, if any."""

    def __init__(
        self,
        inner: Adapter,
        book: FaultBook,
        backend: str,
        replica: str,
        on_inject: Callable[[Fault], None] | None = None,
    ) -> None:
        self.inner, self.book, self.backend, self.replica = inner, book, backend, replica
        self._on_inject = on_inject

    def call(self, request: Request, timeout: float) -> Coroutine[Any, Any, Result]:
        """With no fault armed, the inner adapter's call itself (no coroutine frame of its
        own on every request)."""
        if self.book.empty:
            return self.inner.call(request, timeout)
        return self._faulty_call(request, timeout)

    async def _faulty_call(self, request: Request, timeout: float) -> Result:
        timeout, _ = await self._before(timeout, False)
        return await self.inner.call(request, timeout)

    async def stream(self, request: Request, timeout: float) -> ChunkStream:
        """The inner adapter's stream, after the call faults (they hit before the first chunk),
        with a stream fault if one applies."""
        timeout, fault = await self._before(timeout, True)
        inner = cast(StreamingAdapter, self.inner)
        if fault is None:
            return await inner.stream(request, timeout)
        spec, tag = fault.spec, f"injected fault {fault.id}"
        if spec.after == 0 and spec.kind is not FaultKind.STREAM_TRICKLE:  # before any chunk
            if spec.kind is FaultKind.STREAM_STALL:
                await asyncio.sleep(max(0.0, timeout))
            raise self._label(stream_failure(spec.kind, tag))
        stream = await inner.stream(request, timeout)
        after = max(spec.after, len(stream.first))
        return FaultyStream(stream, spec.kind, after, spec.latency, tag, self._label)

    async def _before(self, timeout: float, streaming: bool) -> tuple[float, Fault | None]:
        """Apply the call faults; the time left, and the stream fault to apply (streaming)."""
        faults = self.book.matching(self.backend, self.replica)
        found: Fault | None = None
        for fault in faults:
            streams = fault.spec.kind in STREAM_FAULTS
            if streams and (not streaming or found is not None):
                continue
            if fault.spec.rate < 1.0 and self.book.rng.random() >= fault.spec.rate:
                continue
            if self._on_inject is not None:
                self._on_inject(fault)
            if streams:
                found = fault
            else:
                timeout = await self._apply(fault, timeout)
        return timeout, found

    async def _apply(self, fault: Fault, timeout: float) -> float:
        """Sleep or raise as the fault says; the time left for the real call."""
        kind, tag = fault.spec.kind, f"injected fault {fault.id}"
        if kind is FaultKind.LATENCY:
            delay = fault.delay(self.book.rng)
            if delay >= timeout:
                await asyncio.sleep(max(0.0, timeout))
                raise self._label(UpstreamTimeout(f"{tag}: {delay * 1000:.0f} ms latency"))
            await asyncio.sleep(delay)
            return timeout - delay
        if kind is FaultKind.HANG:
            await asyncio.sleep(max(0.0, timeout))
            raise self._label(UpstreamTimeout(f"{tag}: hang"))
        if kind is FaultKind.ERROR:
            status = fault.spec.status
            raise self._label(UpstreamStatus(f"{tag}: status {status}", status=status))
        if kind is FaultKind.DROP:
            raise self._label(UpstreamUnavailable(f"{tag}: connection dropped"))
        raise self._label(UpstreamMalformed(f"{tag}: malformed body"))

    def _label(self, exc: UpstreamError) -> UpstreamError:
        exc.backend, exc.replica = self.backend, self.replica
        return exc

    async def close(self) -> None:
        await self.inner.close()
