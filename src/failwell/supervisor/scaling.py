"""What the autoscaler of one managed backend is fed and what it leaves: the load sampled every
tick, the tier-1 latency window, the metrics of each signal and decision, recent decisions."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from failwell.clock import Clock
from failwell.config.managed import ManagedConfig
from failwell.routing.pool import Replica
from failwell.supervisor.autoscale import Autoscaler, Decision
from failwell.supervisor.latency import LatencyWindow
from failwell.supervisor.metrics import SupervisorMetrics


class Scaling:
    def __init__(
        self, backend: str, managed: ManagedConfig, metrics: SupervisorMetrics, clock: Clock
    ) -> None:
        self.backend, self.metrics, self.clock = backend, metrics, clock
        self.managed = managed
        self.autoscaler = Autoscaler(managed.autoscale, managed.min, managed.max, clock)
        self.latency = LatencyWindow()
        self.decisions: deque[dict[str, Any]] = deque(maxlen=60)
        self._sum, self._samples = 0.0, 0
        self._counted, self._counted_at = 0, clock.now()

    def rebind(self, managed: ManagedConfig) -> None:
        """A reload: a changed policy or range starts a fresh autoscaler."""
        old, self.managed = self.managed, managed
        if (old.autoscale, old.min, old.max) != (managed.autoscale, managed.min, managed.max):
            self.autoscaler = Autoscaler(managed.autoscale, managed.min, managed.max, self.clock)

    def publish(self, desired: int) -> None:
        self.metrics.desired.labels(self.backend).set(desired)

    def sample(self, serving: Sequence[Replica]) -> None:
        """Add this tick's requests in flight over the serving replicas."""
        self._sum += sum(r.outstanding for r in serving)
        self._samples += 1

    def _rate(self) -> float | None:
        """Requests/s that ended since the last call (None on the first)."""
        now, count = self.clock.now(), self.latency.count
        elapsed = now - self._counted_at
        rate = (count - self._counted) / elapsed if elapsed > 0 else None
        self._counted, self._counted_at = count, now
        return rate

    def decide(self, current: int, serving: int) -> Decision | None:
        """The interval's mean load, request rate and recent p99 to the autoscaler; a change
        or None."""
        in_flight = self._sum / max(self._samples, 1)
        self._sum, self._samples = 0.0, 0
        rate = self._rate()
        policy = self.managed.autoscale
        if not policy.enabled:
            return None
        span = max(policy.up_window, policy.interval * 3)
        p99 = self.latency.quantile(0.99, time.monotonic() - span)
        per = in_flight / max(serving, 1)
        signals = {
            "in_flight_per_replica": per,
            "p99_seconds": p99 if p99 is not None else 0.0,
            "load_ratio": per / policy.target_in_flight,
            "request_rate": rate or 0.0,
        }
        decision = self.autoscaler.decide(current, in_flight, p99, rate)
        if policy.trend.enabled:
            signals["forecast_rate"] = self.autoscaler.trend.forecast() or 0.0
        for signal, value in signals.items():
            self.metrics.signal.labels(self.backend, signal).set(value)
        if decision is not None:
            self.publish(decision.desired)
            self.metrics.decisions.labels(self.backend, decision.direction).inc()
            self.decisions.appendleft({"at": self.clock.wall(), **decision.as_json()})
        return decision
