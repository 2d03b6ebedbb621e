"""Prometheus metrics. One registry per gateway; labelled children are cached so the hot path
does a dict lookup and an increment, nothing more."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from failwell.observe import families
from failwell.observe.children import Children
from failwell.observe.siblings import SiblingMetrics
from failwell.resilience.breaker import BreakerState

disable_created_metrics()  # type: ignore[no-untyped-call]  # the _created series double the exposition for no use here


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = families.REQUESTS.counter(r)
        self.latency = families.REQUEST_DURATION.histogram(r)
        self.fallbacks = families.FALLBACKS.counter(r)
        self.rows = families.ROWS.counter(r)
        self.breaker_state = families.BREAKER_STATE.gauge(r)
        self.breaker_transitions = families.BREAKER_TRANSITIONS.counter(r)
        self.in_flight = families.IN_FLIGHT.gauge(r)
        self.cache_dropped = families.CACHE_WRITES_DROPPED.counter(r)
        self.stream_gap = families.STREAM_GAP.histogram(r)
        self.stream_ends = families.STREAM_ENDS.counter(r)
        self.stream_first_token = families.STREAM_FIRST_TOKEN.histogram(r)
        self.streams_in_flight = families.STREAMS_IN_FLIGHT.gauge(r)
        self.stream_failures = families.STREAM_FAILURES.counter(r)
        self._child = Children()
        self.siblings: SiblingMetrics | None = None  # set in a worker of many

    def answered(self, route: str, tier: str, outcome: str, seconds: float) -> None:
        self._child(self.requests, route, tier, outcome).inc()
        self._child(self.latency, route, tier).observe(seconds)

    def refused(self, route: str, outcome: str) -> None:
        self._child(self.requests, route, "none", outcome).inc()

    def fell_back(self, route: str, from_tier: str, error: str) -> None:
        self._child(self.fallbacks, route, from_tier, error).inc()

    def rows_answered(self, route: str, tier: str, rows: int) -> None:
        """``rows`` rows of a batch answered by ``tier`` (per-row fallback)."""
        self._child(self.rows, route, tier).inc(rows)

    def stream_gaps(self, route: str, tier: str) -> Histogram:
        """The inter-chunk gap histogram of one route and tier (observed per chunk)."""
        return self._child(self.stream_gap, route, tier)

    def stream_ended(self, route: str, tier: str, outcome: str) -> None:
        self._child(self.stream_ends, route, tier, outcome).inc()

    def stream_opened(self, route: str, tier: str, seconds: float) -> Gauge:
        """A stream's first chunk came after ``seconds``; the route's open-streams gauge, raised
        (the caller lowers it when the stream ends)."""
        self._child(self.stream_first_token, route, tier).observe(seconds)
        gauge: Gauge = self._child(self.streams_in_flight, route)
        gauge.inc()
        return gauge

    def stream_failed(self, route: str, tier: str, kind: str, outcome: str) -> None:
        self._child(self.stream_failures, route, tier, kind, outcome).inc()

    def route_in_flight(self, route: str) -> Gauge:
        return self._child(self.in_flight, route)

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
