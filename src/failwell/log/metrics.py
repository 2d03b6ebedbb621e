"""Prometheus metrics of the inference and audit log, on the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 5.0)


class LogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "failwell_log_records",
            "Records made durable, by stream.",
            ["stream"],
            registry=registry,
        )
        self.drops = Counter(
            "failwell_log_dropped_records",
            "Records that could not be written, by stream and reason.",
            ["stream", "reason"],
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "failwell_log_commit_seconds",
            "Time of one group commit (write + fsync).",
            ["stream"],
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.lag_seconds = Histogram(
            "failwell_log_lag_seconds",
            "Time from a record being queued to it being durable.",
            ["stream"],
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.lag_max = Gauge(
            "failwell_log_lag_max_seconds",
            "Longest time a record waited to be durable since start-up.",
            ["stream"],
            registry=registry,
        )
        self._lag_max: dict[str, float] = {}
        self.pending_records = Gauge(
            "failwell_log_pending_records",
            "Records queued, not yet durable.",
            ["stream"],
            registry=registry,
        )
        self.log_up = Gauge(
            "failwell_log_up",
            "1 while the last write succeeded, 0 after a failed one.",
            ["stream"],
            registry=registry,
        )
        self.free_bytes = Gauge(
            "failwell_log_disk_free_bytes",
            "Free space on the log's disk.",
            ["stream"],
            registry=registry,
        )
        self.recovered_bytes = Counter(
            "failwell_log_recovered_bytes",
            "Bytes of an incomplete final record cut off at start-up.",
            ["stream"],
            registry=registry,
        )

    def committed(self, stream: str, n: int, seconds: float) -> None:
        if n:
            self.records.labels(stream).inc(n)
            self.commit_seconds.labels(stream).observe(seconds)

    def lag(self, stream: str, lags: list[float]) -> None:
        child = self.lag_seconds.labels(stream)
        for value in lags:
            child.observe(value)
        if lags and max(lags) > self._lag_max.get(stream, 0.0):
            self._lag_max[stream] = max(lags)
            self.lag_max.labels(stream).set(max(lags))

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
