"""Prometheus metrics. One registry per gateway; labelled children are cached so the hot path
does a dict lookup and an increment, nothing more."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

from failwell.resilience.breaker import BreakerState

disable_created_metrics()  # type: ignore[no-untyped-call]  # the _created series double the exposition for no use here

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "failwell_requests",
            "Requests answered or refused, by route, tier and outcome.",
            ["route", "tier", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "failwell_request_duration_seconds",
            "Time to answer, by route and answering tier.",
            ["route", "tier"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "failwell_fallbacks",
            "Tiers passed over, by route, the tier that failed and why.",
            ["route", "from_tier", "error"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "failwell_breaker_state",
            "Breaker state per replica: 0 closed, 1 half-open, 2 open.",
            ["backend", "replica"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "failwell_breaker_transitions",
            "Breaker state changes per replica.",
            ["backend", "replica", "to"],
            registry=r,
        )
        self.in_flight = Gauge(
            "failwell_in_flight_requests",
            "Requests being answered now, by route.",
            ["route"],
            registry=r,
        )
        self.cache_dropped = Counter(
            "failwell_cache_writes_dropped",
            "Cache writes dropped because the queue was full.",
            registry=r,
        )
        self._children: dict[tuple[str, ...], MetricWrapperBase] = {}

    def _child(self, metric: MetricWrapperBase, *labels: str) -> MetricWrapperBase:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def answered(self, route: str, tier: str, outcome: str, seconds: float) -> None:
        self._child(self.requests, route, tier, outcome).inc()  # type: ignore[attr-defined]
        self._child(self.latency, route, tier).observe(seconds)  # type: ignore[attr-defined]

    def refused(self, route: str, outcome: str) -> None:
        self._child(self.requests, route, "none", outcome).inc()  # type: ignore[attr-defined]

    def fell_back(self, route: str, from_tier: str, error: str) -> None:
        self._child(self.fallbacks, route, from_tier, error).inc()  # type: ignore[attr-defined]

    def route_in_flight(self, route: str) -> Gauge:
        return self._child(self.in_flight, route)  # type: ignore[return-value]

    def breaker_changed(
        self, backend: str, replica: str, old: BreakerState, new: BreakerState
    ) -> None:
        self._child(self.breaker_state, backend, replica).set(int(new))  # type: ignore[attr-defined]
        self._child(self.breaker_transitions, backend, replica, new.name.lower()).inc()  # type: ignore[attr-defined]

    def breaker_init(self, backend: str, replica: str) -> None:
        self._child(self.breaker_state, backend, replica).set(0)  # type: ignore[attr-defined]

    def render(self) -> bytes:
        return generate_latest(self.registry)
