"""The retraining loop's metrics, made from observe/families.py: triggers by signal and
outcome, jobs by outcome, gate verdicts, canary rollouts by decision."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from failwell.observe import families


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.triggers = families.RETRAIN_TRIGGERS.counter(registry)
        self.jobs = families.RETRAIN_JOBS.counter(registry)
        self.gate = families.RETRAIN_GATE.counter(registry)
        self.rollouts = families.RETRAIN_ROLLOUTS.counter(registry)
