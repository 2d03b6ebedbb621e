"""The retraining loop's metrics, made from observe/families.py: triggers by signal and
outcome, jobs by outcome, gate verdicts, canary rollouts by decision."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from failwell.observe import families_planes


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.triggers = families_planes.RETRAIN_TRIGGERS.counter(registry)
        self.jobs = families_planes.RETRAIN_JOBS.counter(registry)
        self.gate = families_planes.RETRAIN_GATE.counter(registry)
        self.rollouts = families_planes.RETRAIN_ROLLOUTS.counter(registry)
