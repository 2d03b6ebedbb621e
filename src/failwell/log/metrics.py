"""Prometheus metrics of the inference and audit log, on the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from failwell.observe import families_planes
from failwell.observe.tally import HistogramTally


class LogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = families_planes.LOG_RECORDS.counter(registry)
        self.drops = families_planes.LOG_DROPPED_RECORDS.counter(registry)
        self.commit_seconds = families_planes.LOG_COMMIT.histogram(registry)
        # a tally: one bucket walk per batch, not a locked observe per record; each stream's
        # writer thread is the only writer of its series (observe/tally.py)
        self.lag_seconds = HistogramTally(families_planes.LOG_LAG, registry)
        self.lag_max = families_planes.LOG_LAG_MAX.gauge(registry)
        self._lag_max: dict[str, float] = {}
        self.pending_records = families_planes.LOG_PENDING_RECORDS.gauge(registry)
        self.log_up = families_planes.LOG_UP.gauge(registry)
        self.free_bytes = families_planes.LOG_DISK_FREE.gauge(registry)
        self.recovered_bytes = families_planes.LOG_RECOVERED_BYTES.counter(registry)

    def committed(self, stream: str, n: int, seconds: float) -> None:
        if n:
            self.records.labels(stream).inc(n)
            self.commit_seconds.labels(stream).observe(seconds)

    def lag(self, stream: str, lags: list[float]) -> None:
        if not lags:
            return
        self.lag_seconds.child((stream,)).observe_many(lags)
        longest = max(lags)
        if longest > self._lag_max.get(stream, 0.0):
            self._lag_max[stream] = longest
            self.lag_max.labels(stream).set(longest)

    def dropped(self, stream: str, reason: str, n: int = 1) -> None:
        self.drops.labels(stream, reason).inc(n)

    def pending(self, stream: str, n: int) -> None:
        self.pending_records.labels(stream).set(n)

    def up(self, stream: str, ok: bool) -> None:
        self.log_up.labels(stream).set(1 if ok else 0)

    def disk_free(self, stream: str, n: int) -> None:
        self.free_bytes.labels(stream).set(n)

    def recovered(self, stream: str, n: int) -> None:
        self.recovered_bytes.labels(stream).inc(n)
