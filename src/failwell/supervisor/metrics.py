"""The supervisor's and the autoscaler's metrics, made from observe/families.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from failwell.observe import families_planes


class SupervisorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.replicas = families_planes.MANAGED_REPLICAS.gauge(registry)
        self.failures = families_planes.REPLICA_FAILURES.counter(registry)
        self.quarantined = families_planes.REPLICA_QUARANTINED.gauge(registry)
        self.ready = families_planes.REPLICA_READY_SECONDS.histogram(registry)
        self.desired = families_planes.AUTOSCALE_DESIRED.gauge(registry)
        self.decisions = families_planes.AUTOSCALE_DECISIONS.counter(registry)
        self.signal = families_planes.AUTOSCALE_SIGNAL.gauge(registry)
