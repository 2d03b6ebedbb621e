"""The request path's metrics as plain numbers, exposed by a collector at scrape time.

prometheus_client's children take a lock, check that the metric is observable and (a
histogram) walk its buckets in Python on every increment: four calls or more per update,
several per request. Here an update is a dict lookup and an add: the event loop is the only
writer. A scrape (possibly from a worker thread) copies each table with one C-level call
under the GIL, so it never sees a table change size under it; a histogram's sum may be one
observation ahead of its buckets, as with prometheus_client's own per-value locks.

The exposition is the one prometheus_client gives for its Counter, Gauge and Histogram
(``_total`` counters, cumulative ``le`` buckets, ``_count`` and ``_sum``, no ``_created``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from failwell.observe.family import Family, Kind

Labels = tuple[str, ...]


class Level:
    """One gauge series: raised and lowered by one."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def set(self, value: float) -> None:
        self.value = value


class Buckets:
    """One histogram series: counts per bucket (the last one +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: the first bound >= value
        self.sum += value

    def observe_many(self, values: list[float]) -> None:
        counts, bounds = self.counts, self.bounds
        for value in values:
            counts[bisect_left(bounds, value)] += 1
        self.sum += sum(values)


class Tally(Collector):
    """A family's series by label values, registered with ``registry`` as its own collector."""

    def __init__(self, family: Family, registry: CollectorRegistry) -> None:
        self.family = family
        self._setup()
        registry.register(self)

    def _setup(self) -> None:
        raise NotImplementedError

    def metric(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> Iterator[Metric]:
        yield self.metric()

    def collect(self) -> Iterator[Metric]:
        yield self.metric()


class CounterTally(Tally):
    def _setup(self) -> None:
        assert self.family.kind is Kind.COUNTER, self.family.name
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add ``amount`` (not negative: a counter only grows)."""
        if amount < 0:
            raise ValueError(f"{self.family.name}: a counter cannot fall ({amount})")
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def metric(self) -> Metric:
        f = self.family
        m = CounterMetricFamily(f.name, f.help, labels=f.labels)
        for labels, value in list(self.values.items()):
            m.add_metric(labels, value)
        return m


class GaugeTally(Tally):
    def _setup(self) -> None:
        assert self.family.kind is Kind.GAUGE, self.family.name
        self.levels: dict[Labels, Level] = {}

    def child(self, labels: Labels) -> Level:
        level = self.levels.get(labels)
        if level is None:
            level = self.levels[labels] = Level()
        return level

    def metric(self) -> Metric:
        f = self.family
        m = GaugeMetricFamily(f.name, f.help, labels=f.labels)
        for labels, level in list(self.levels.items()):
            m.add_metric(labels, level.value)
        return m


class HistogramTally(Tally):
    def _setup(self) -> None:
        assert self.family.kind is Kind.HISTOGRAM, self.family.name
        self.bounds = tuple(float(b) for b in self.family.buckets)
        self._les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        self.series: dict[Labels, Buckets] = {}

    def child(self, labels: Labels) -> Buckets:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = Buckets(self.bounds)
        return series

    def observe(self, labels: Labels, value: float) -> None:
        (self.series.get(labels) or self.child(labels)).observe(value)

    def metric(self) -> Metric:
        f = self.family
        m = HistogramMetricFamily(f.name, f.help, labels=f.labels)
        for labels, series in list(self.series.items()):
            total, cumulative = 0, []
            for le, count in zip(self._les, list(series.counts), strict=True):
                total += count
                cumulative.append((le, float(total)))
            m.add_metric(labels, cumulative, series.sum)
        return m
