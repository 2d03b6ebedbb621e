"""The control plane of one gateway: health board and prober, canary runner, SLO tracker and
evaluator, recent traffic, answer metrics and the optional request log, installed through the
gateway's extension points (services, observers, the metrics registry)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from failwell.control.alerts import SloEvaluator
from failwell.control.canary import CanaryRunner
from failwell.control.prober import HealthBoard, HealthProber
from failwell.control.slo import RouteSlo, SloEventsCollector, SloTracker
from failwell.observe.answers import AnswerMetrics
from failwell.observe.freshness import (
    ModelAgeCollector,
    ModelAges,
    RouteFreshness,
    feature_histogram,
)
from failwell.observe.requestlog import request_logger
from failwell.observe.tracing import span_observer
from failwell.observe.traffic import Traffic
from failwell.routing.assemble import Gateway


class QueueCollector(Collector):
    """``failwell_replica_outstanding_requests``: requests in flight per replica, read at
    scrape time (the pool already counts them; the request path pays nothing more)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "failwell_replica_outstanding_requests",
            "Requests in flight or queued per replica.",
            labels=["backend", "replica"],
        )
        for name, pool in self.gateway.pools.items():
            for replica in pool.replicas:
                family.add_metric([name, replica.label], replica.outstanding)
        yield family


class ControlPlane:
    def __init__(self, gateway: Gateway) -> None:
        registry = gateway.metrics.registry
        config = gateway.config
        self.gateway = gateway
        self.board = HealthBoard(gateway.pools, registry)
        self.prober = HealthProber(self.board, dict(config.backends), registry)
        self.canaries = CanaryRunner(gateway.routes, self.board, registry)
        self.model_ages = ModelAges.of(gateway)
        features = feature_histogram(gateway)
        self.slo = SloTracker(
            {
                name: RouteSlo(
                    name,
                    rc.slo,
                    gateway.clock,
                    None
                    if rc.slo.freshness is None
                    else RouteFreshness(
                        name, rc.slo.freshness, self.model_ages, features, gateway.clock
                    ),
                )
                for name, rc in config.routes.items()
            }
        )
        self.evaluator = SloEvaluator(self.slo, config.alerts, registry, gateway.clock)
        self.traffic = Traffic(gateway.routes, gateway.clock)
        registry.register(SloEventsCollector(self.slo))
        registry.register(QueueCollector(gateway))
        registry.register(ModelAgeCollector(self.model_ages))
        gateway.services += [self.prober, self.canaries, self.evaluator]
        gateway.observers += [self.slo, self.traffic, AnswerMetrics(gateway.routes, registry)]
        gateway.observers.append(self.model_ages)
        gateway.reload_hooks.append(lambda _config: self.model_ages.refresh(gateway))
        if config.gateway.access_log:
            gateway.observers.append(request_logger)
        spans = span_observer()
        if spans is not None:
            gateway.observers.append(spans)
