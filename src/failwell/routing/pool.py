"""A pool of replicas behind one backend: least-outstanding balancing, priority groups,
per-replica breakers, and retries within the tier's time budget.

Priority groups: replicas with priority 0 take all traffic while any of them is available
(breaker closed, or half-open with a probe slot free, and not marked down by the prober).
Only when none is does the next group (a standby zone) get traffic; it gives it back as soon
as a replica of the group above can take a probe again.

A replica that timed out is not tried again for the same request: the time is better spent on
another replica or the next tier. A replica that answered 429 cools down for its
``Retry-After`` (``THROTTLE_BACKOFF`` when it did not say) and the request moves on at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, cast

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.contracts import Adapter, ChunkStream, Request, Result, StreamingAdapter
from failwell.errors import (
    DeadlineExceeded,
    NoHealthyReplica,
    UpstreamError,
    UpstreamThrottled,
    UpstreamTimeout,
)
from failwell.resilience.breaker import CLOSED, Breaker
from failwell.resilience.retry import RetryPolicy

Sleep = Callable[[float], Awaitable[None]]
THROTTLE_BACKOFF = 1.0  # seconds a replica cools down after a 429 without Retry-After


class Replica:
    __slots__ = (
        "adapter",
        "base",
        "breaker",
        "healthy",
        "label",
        "outstanding",
        "priority",
        "zone",
    )

    def __init__(
        self,
        label: str,
        adapter: Adapter,
        breaker: Breaker,
        priority: int = 0,
        zone: str = "default",
    ) -> None:
        self.label = label
        self.adapter = adapter
        self.base = adapter  # the adapter as built, under any wrapper (fault injection)
        self.breaker = breaker
        self.priority = priority
        self.zone = zone
        self.outstanding = 0
        self.healthy = True  # set by the active health prober

    def available(self) -> bool:
        """May the pool send it a call now (a half-open breaker admits its probe calls)?"""
        return self.healthy and self.breaker.available()

    def serving(self) -> bool:
        """In rotation for readiness and status: healthy with its breaker closed (a half-open
        replica that has not passed its probe call yet does not count)."""
        return self.healthy and self.breaker.state is CLOSED

    def __repr__(self) -> str:
        return f"<Replica {self.label} p{self.priority} out={self.outstanding} {self.breaker!r}>"


class Pool:
    def __init__(
        self,
        backend: str,
        replicas: Sequence[Replica],
        retry: RetryPolicy,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.backend = backend
        self.replicas: list[Replica] = []
        self.groups: list[list[Replica]] = []
        self._set(list(replicas))
        self.retry = retry
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep  # the backoff between attempts; tests inject a fake
        self._turn = itertools.count()

    def _set(self, replicas: list[Replica]) -> None:
        """Swap in a new replica list and its groups: new lists, assigned in one step, so a
        ``pick`` (which reads ``groups`` once) sees either the old set or the new one."""
        groups = [
            [r for r in replicas if r.priority == p] for p in sorted({r.priority for r in replicas})
        ]
        self.replicas, self.groups = replicas, groups

    def add(self, replica: Replica) -> None:
        """Put ``replica`` in rotation from the next request on (the supervisor's replicas)."""
        if replica not in self.replicas:
            self._set([*self.replicas, replica])

    def remove(self, replica: Replica) -> bool:
        """Take ``replica`` out of rotation: no new request picks it; calls in flight finish.
        False when it was not in the pool."""
        if replica not in self.replicas:
            return False
        self._set([r for r in self.replicas if r is not replica])
        return True

    def available(self) -> bool:
        for r in self.replicas:  # noqa: SIM110  # a loop: any() would add a generator per request
            if r.available():
                return True
        return False

    def pick(
        self, tried: Sequence[Replica] = (), exclude: Sequence[Replica] = ()
    ) -> Replica | None:
        """Least outstanding requests in the first group with an available replica, preferring
        replicas not tried yet for this request and never one in ``exclude``; ties go
        round-robin."""
        for group in self.groups:
            if len(group) == 1:  # one replica at this priority: no ranking to do
                only = group[0]
                if only.available() and only not in exclude:
                    return only
                continue
            ready = [r for r in group if r.available() and r not in exclude]
            if not ready:
                continue
            fresh = [r for r in ready if r not in tried] or ready
            start = next(self._turn) % len(fresh)
            best = fresh[start]
            for r in itertools.chain(fresh[start + 1 :], fresh[:start]):
                if r.outstanding < best.outstanding:
                    best = r
            return best
        return None

    def call(self, request: Request, budget: float) -> Coroutine[Any, Any, tuple[Result, Replica]]:
        """Answer within ``budget`` seconds, retrying on other replicas while the budget allows
        (``_attempts`` itself, not a wrapper coroutine: one frame fewer per request)."""
        attempts = self._attempts(request, budget, self.timeout, False)
        return cast("Coroutine[Any, Any, tuple[Result, Replica]]", attempts)

    async def open_stream(
        self, request: Request, budget: float, first_token: float
    ) -> tuple[ChunkStream, Replica]:
        """A stream whose first chunk came within ``first_token`` seconds of its attempt, trying
        other replicas within ``budget``. The replica's verdict waits for the stream's end:
        call ``settle`` with how it ended."""
        stream, replica = await self._attempts(request, budget, first_token, True)
        return cast(ChunkStream, stream), replica

    @staticmethod
    def settle(replica: Replica, failure: UpstreamError | None) -> None:
        """The verdict on a stream from ``open_stream``: complete (``failure`` None), or
        failed mid-stream (a stall or a cut counts against the replica)."""
        replica.outstanding -= 1
        if failure is None:
            replica.breaker.record_success()
        elif failure.counts_against_replica:
            replica.breaker.record_failure()
        else:
            replica.breaker.release()

    @staticmethod
    def abandon(replica: Replica) -> None:
        """A stream from ``open_stream`` left unfinished by its client: no verdict."""
        replica.outstanding -= 1
        replica.breaker.release()

    async def _attempts(
        self, request: Request, budget: float, attempt_time: float, streaming: bool
    ) -> tuple[Result | ChunkStream, Replica]:
        clock = self._clock
        ends_at = clock.now() + budget
        tried: list[Replica] = []
        timed_out: list[Replica] = []
        last: UpstreamError | None = None
        attempt = 1
        while True:
            replica = self.pick(tried, timed_out)
            if replica is None or not replica.breaker.acquire():
                raise last or NoHealthyReplica(f"backend {self.backend!r}: no replica available")
            timeout = min(attempt_time, ends_at - clock.now())
            if timeout <= 0:
                replica.breaker.release()
                raise DeadlineExceeded(f"backend {self.backend!r}: no time left for an attempt")
            tried.append(replica)
            replica.outstanding += 1
            try:
                if streaming:
                    adapter = cast(StreamingAdapter, replica.adapter)
                    result: Result | ChunkStream = await adapter.stream(request, timeout)
                else:
                    result = await replica.adapter.call(request, timeout)
            except UpstreamThrottled as exc:
                last = exc.labelled(self.backend, replica.label, attempt)
                replica.outstanding -= 1
                replica.breaker.release()
                replica.breaker.hold(exc.retry_after or THROTTLE_BACKOFF)
            except UpstreamError as exc:
                last = exc.labelled(self.backend, replica.label, attempt)
                replica.outstanding -= 1
                if exc.counts_against_replica:
                    replica.breaker.record_failure()
                else:
                    replica.breaker.record_success()
                if not exc.retryable:
                    raise
                if isinstance(exc, UpstreamTimeout):
                    timed_out.append(replica)
            except BaseException:
                replica.outstanding -= 1
                replica.breaker.release()
                raise
            else:
                if not streaming:  # a stream's verdict waits for its end (settle)
                    replica.outstanding -= 1
                    replica.breaker.record_success()
                return result, replica
            attempt += 1
            wait = 0.0 if isinstance(last, UpstreamThrottled) else self.retry.wait(attempt)
            if not self.retry.may_retry(attempt, wait, ends_at - clock.now(), attempt_time):
                raise last
            if wait > 0:
                await self._sleep(wait)
