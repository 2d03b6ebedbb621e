"""A metric family's declaration (name, help, labels, kind, buckets) and its constructors.

``families.py`` declares the request path's and the health plane's families with these,
``families_planes.py`` those of the log, the fleet, managed replicas and retraining."""

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

    @property
    def bucket(self) -> str:
        """The name of a histogram's bucket samples (``histogram_quantile`` reads them)."""
        assert self.kind is Kind.HISTOGRAM, self.name
        return f"{self.name}_bucket"

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
