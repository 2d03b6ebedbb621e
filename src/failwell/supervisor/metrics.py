"""The supervisor's and the autoscaler's metrics, made from observe/families.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from failwell.observe import families


class SupervisorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.replicas = families.MANAGED_REPLICAS.gauge(registry)
        self.failures = families.REPLICA_FAILURES.counter(registry)
        self.quarantined = families.REPLICA_QUARANTINED.gauge(registry)
        self.ready = families.REPLICA_READY_SECONDS.histogram(registry)
        self.desired = families.AUTOSCALE_DESIRED.gauge(registry)
        self.decisions = families.AUTOSCALE_DECISIONS.counter(registry)
        self.signal = families.AUTOSCALE_SIGNAL.gauge(registry)
