"""The health plane of one gateway: the health board and prober, the canary runner, the SLO
tracker and evaluator, recent traffic, answer metrics, model ages and the optional request
log and spans.

Built once (its metrics, windows and alert states live as long as the gateway); ``prepare``
checks a topology's canaries before it serves, ``bind`` points every part at it, at start-up
and on each reload, keeping what belongs to unchanged backends and routes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from failwell.clock import Clock
from failwell.config.models import FailwellConfig
from failwell.contracts import Observer, Service
from failwell.health.alerts import SloEvaluator
from failwell.health.answers import AnswerMetrics
from failwell.health.canary import Canary, CanaryRunner
from failwell.health.freshness import (
    ModelAgeCollector,
    ModelAges,
    RouteFreshness,
    feature_histogram,
)
from failwell.health.prober import HealthBoard, HealthProber
from failwell.health.slo import RouteSlo, SloEventsCollector, SloTracker
from failwell.health.traffic import Traffic
from failwell.observe import families
from failwell.observe.requestlog import request_logger
from failwell.observe.tracing import span_observer
from failwell.routing.pool import Pool
from failwell.routing.route import Route


class QueueCollector(Collector):
    """``failwell_replica_outstanding_requests``: requests in flight per replica, read at
    scrape time (the pool already counts them; the request path pays nothing more)."""

    def __init__(self, pools: Mapping[str, Pool]) -> None:
        self.pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = families.REPLICA_OUTSTANDING
        family = GaugeMetricFamily(f.name, f.help, labels=f.labels)
        for name, pool in self.pools.items():
            for replica in pool.replicas:
                family.add_metric([name, replica.label], replica.outstanding)
        yield family


@dataclass(frozen=True)
class HealthPlan:
    """What ``bind`` applies: checked before the topology serves."""

    config: FailwellConfig
    pools: Mapping[str, Pool]
    routes: Mapping[str, Route]
    canaries: list[Canary]


class HealthPlane:
    def __init__(
        self,
        config: FailwellConfig,
        pools: Mapping[str, Pool],
        registry: CollectorRegistry,
        clock: Clock,
    ) -> None:
        self.clock = clock
        self.board = HealthBoard(registry)
        self.prober = HealthProber(self.board, registry)
        self.canaries = CanaryRunner(self.board, registry)
        self.model_ages = ModelAges({}, {}, clock)
        self._features = feature_histogram(registry)
        self.slo = SloTracker()
        self.evaluator = SloEvaluator(self.slo, config.alerts, registry, clock)
        self.traffic = Traffic(clock)
        self.answers = AnswerMetrics(registry)
        registry.register(SloEventsCollector(self.slo))
        registry.register(QueueCollector(pools))
        registry.register(ModelAgeCollector(self.model_ages))
        self.services: list[Service] = [self.prober, self.canaries, self.evaluator]
        self.observers: list[Observer] = [self.slo, self.traffic, self.answers, self.model_ages]
        if config.gateway.access_log:
            self.observers.append(request_logger)
        spans = span_observer()
        if spans is not None:
            self.observers.append(spans)

    @staticmethod
    def prepare(
        config: FailwellConfig, pools: Mapping[str, Pool], routes: Mapping[str, Route]
    ) -> HealthPlan:
        """Check what ``bind`` will apply (a ConfigError names a canary that cannot run)."""
        return HealthPlan(config, pools, routes, CanaryRunner.plan(routes))

    def bind(self, plan: HealthPlan) -> None:
        """Watch the plan's pools and routes from now on."""
        self.board.bind(plan.pools)
        self.model_ages.bind(plan.config.backends, plan.pools)
        self.slo.bind(
            {
                name: RouteSlo(
                    name,
                    rc.slo,
                    self.clock,
                    None
                    if rc.slo.freshness is None
                    else RouteFreshness(
                        name, rc.slo.freshness, self.model_ages, self._features, self.clock
                    ),
                )
                for name, rc in plan.config.routes.items()
            }
        )
        self.evaluator.bind()
        self.traffic.bind(plan.routes)
        self.answers.bind(plan.routes)
        self.prober.bind(plan.config.backends)
        self.canaries.bind(plan.canaries)
