"""Prometheus metrics. One registry per gateway. The request path's families are tallies
(``observe/tally.py``: a dict lookup and an add per update); the rest are prometheus_client's
own, their labelled children cached."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

from failwell.observe import families
from failwell.observe.children import Children
from failwell.observe.siblings import SiblingMetrics
from failwell.observe.tally import Buckets, CounterTally, GaugeTally, HistogramTally, Level
from failwell.resilience.breaker import BreakerState

disable_created_metrics()  # type: ignore[no-untyped-call]  # the _created series double the exposition for no use here


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = CounterTally(families.REQUESTS, r)
        self.latency = HistogramTally(families.REQUEST_DURATION, r)
        self.fallbacks = CounterTally(families.FALLBACKS, r)
        self.rows = CounterTally(families.ROWS, r)
        self.breaker_state = families.BREAKER_STATE.gauge(r)
        self.breaker_transitions = families.BREAKER_TRANSITIONS.counter(r)
        self.in_flight = GaugeTally(families.IN_FLIGHT, r)
        self.cache_dropped = families.CACHE_WRITES_DROPPED.counter(r)
        self.stream_gap = HistogramTally(families.STREAM_GAP, r)
        self.stream_ends = CounterTally(families.STREAM_ENDS, r)
        self.stream_first_token = HistogramTally(families.STREAM_FIRST_TOKEN, r)
        self.streams_in_flight = GaugeTally(families.STREAMS_IN_FLIGHT, r)
        self.stream_failures = CounterTally(families.STREAM_FAILURES, r)
        self._child = Children()
        self.siblings: SiblingMetrics | None = None  # set in a worker of many

    def answered(self, route: str, tier: str, outcome: str, seconds: float) -> None:
        self.requests.inc((route, tier, outcome))
        self.latency.observe((route, tier), seconds)

    def refused(self, route: str, outcome: str) -> None:
        self.requests.inc((route, "none", outcome))

    def fell_back(self, route: str, from_tier: str, error: str) -> None:
        self.fallbacks.inc((route, from_tier, error))

    def rows_answered(self, route: str, tier: str, rows: int) -> None:
        """``rows`` rows of a batch answered by ``tier`` (per-row fallback)."""
        self.rows.inc((route, tier), rows)

    def stream_gaps(self, route: str, tier: str) -> Buckets:
        """The inter-chunk gap histogram of one route and tier (observed per chunk)."""
        return self.stream_gap.child((route, tier))

    def stream_ended(self, route: str, tier: str, outcome: str) -> None:
        self.stream_ends.inc((route, tier, outcome))

    def stream_opened(self, route: str, tier: str, seconds: float) -> Level:
        """A stream's first chunk came after ``seconds``; the route's open-streams gauge, raised
        (the caller lowers it when the stream ends)."""
        self.stream_first_token.observe((route, tier), seconds)
        gauge = self.streams_in_flight.child((route,))
        gauge.inc()
        return gauge

    def stream_failed(self, route: str, tier: str, kind: str, outcome: str) -> None:
        self.stream_failures.inc((route, tier, kind, outcome))

    def route_in_flight(self, route: str) -> Level:
        return self.in_flight.child((route,))

    def breaker_changed(
        self, backend: str, replica: str, old: BreakerState, new: BreakerState
    ) -> None:
        self._child(self.breaker_state, backend, replica).set(int(new))
        self._child(self.breaker_transitions, backend, replica, new.name.lower()).inc()

    def breaker_init(self, backend: str, replica: str) -> None:
        self._child(self.breaker_state, backend, replica).set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def exposition(self) -> bytes:
        """What ``/metrics`` answers: this process's metrics, or every worker's."""
        if self.siblings is None:
            return self.render()
        return await self.siblings.exposition()
