"""Every metric family failwell exports, declared once: name, help, labels, kind, buckets.

Modules make their metrics from these (``REQUESTS.counter(registry)``); collectors that yield
families at scrape time use ``name`` and ``help`` from here too; the generated Prometheus
rules and Grafana dashboard (``observe/deploy.py``) name series through ``sample``. So a
renamed metric breaks at one place, and ``FAMILIES`` lists what a gateway can export.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


class Kind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # as declared; a counter is exposed with a _total suffix
    help: str
    labels: tuple[str, ...] = ()
    kind: Kind = Kind.COUNTER
    buckets: Sequence[float] = LATENCY_BUCKETS

    @property
    def sample(self) -> str:
        """The name of its samples in the exposition (counters end in ``_total``)."""
        return f"{self.name}_total" if self.kind is Kind.COUNTER else self.name

    def counter(self, registry: CollectorRegistry) -> Counter:
        assert self.kind is Kind.COUNTER, self.name
        return Counter(self.name, self.help, self.labels, registry=registry)

    def gauge(self, registry: CollectorRegistry) -> Gauge:
        assert self.kind is Kind.GAUGE, self.name
        return Gauge(self.name, self.help, self.labels, registry=registry)

    def histogram(self, registry: CollectorRegistry) -> Histogram:
        assert self.kind is Kind.HISTOGRAM, self.name
        return Histogram(self.name, self.help, self.labels, buckets=self.buckets, registry=registry)


def counter(name: str, help: str, *labels: str) -> Family:
    return Family(name, help, labels, Kind.COUNTER)


def gauge(name: str, help: str, *labels: str) -> Family:
    return Family(name, help, labels, Kind.GAUGE)


def histogram(
    name: str, help: str, *labels: str, buckets: Sequence[float] = LATENCY_BUCKETS
) -> Family:
    return Family(name, help, labels, Kind.HISTOGRAM, buckets)


# --- the request path (observe/metrics.py) --------------------------------------------------
REQUESTS = counter(
    "failwell_requests",
    "Requests answered or refused, by route, tier and outcome.",
    "route", "tier", "outcome",
)  # fmt: skip
REQUEST_DURATION = histogram(
    "failwell_request_duration_seconds",
    "Time to answer, by route and answering tier.",
    "route", "tier",
)  # fmt: skip
FALLBACKS = counter(
    "failwell_fallbacks",
    "Tiers passed over, by route, the tier that failed and why.",
    "route", "from_tier", "error",
)  # fmt: skip
BREAKER_STATE = gauge(
    "failwell_breaker_state",
    "Breaker state per replica: 0 closed, 1 half-open, 2 open.",
    "backend", "replica",
)  # fmt: skip
BREAKER_TRANSITIONS = counter(
    "failwell_breaker_transitions", "Breaker state changes per replica.", "backend", "replica", "to"
)
IN_FLIGHT = gauge("failwell_in_flight_requests", "Requests being answered now, by route.", "route")
TOKENS = counter(
    "failwell_tokens",
    "Tokens the upstream counted (usage), by route, answering tier, backend and kind "
    "(prompt, completion).",
    "route", "tier", "backend", "kind",
)  # fmt: skip
STREAM_GAP = histogram(
    "failwell_stream_chunk_gap_seconds",
    "Time between two chunks relayed to a streaming client, by route and tier (the time to "
    "the first chunk is failwell_request_duration_seconds).",
    "route", "tier",
)  # fmt: skip
STREAM_ENDS = counter(
    "failwell_stream_ends",
    "Streams ended, by route, tier and how: complete, or the mid-stream failure's kind "
    "(timeout, unavailable, malformed, stream_error), or client_gone.",
    "route", "tier", "outcome",
)  # fmt: skip
CACHE_WRITES_DROPPED = counter(
    "failwell_cache_writes_dropped", "Cache writes dropped because the queue was full."
)

FAMILIES: tuple[Family, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Family))
