"""Freshness of answers: the age of the model version that answers, per backend, and the age of
the features a route declares, per request. Feeds the freshness SLO (``slo.freshness``) and two
metrics: ``failwell_model_age_seconds{backend}`` (gauge, read at scrape time) and
``failwell_feature_age_seconds{route,feature}`` (histogram).

Where a model version's creation time comes from, per backend, first match wins:
1. a ``model_ref`` backend: the registry's ``created`` time of the version serving now;
2. ``model_created`` in the backend's config;
3. the time this gateway first saw the backend answer with that ``model_version`` (a restart
   starts the count again, so the age is a lower bound).

A feature timestamp is a number (epoch seconds) or an ISO 8601 string (UTC without a zone); an
answered request whose declared feature is missing, unreadable or older than its bound is a bad
freshness event. Per request the cost is a dict look-up per model answer and one parse and one
histogram observation per declared feature.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.backends import BackendConfig
from failwell.config.observe import FreshnessConfig
from failwell.contracts import Exchange
from failwell.observe import families
from failwell.registry.serving import RegistryModel
from failwell.routing.pool import Pool

MAX_VERSIONS = 32  # first-seen times kept per backend (versions in rotation are few)


def parse_time(value: Any) -> float | None:
    """Epoch seconds of a timestamp: a number (epoch seconds) or an ISO 8601 string (UTC
    without a zone); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return (t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t).timestamp()
    return None


class ModelAges:
    """Creation times of the model versions each backend answers with; an observer, so that
    first-seen times start with the first answer of a version whatever the route."""

    def __init__(
        self,
        configured: dict[str, float],
        registry: dict[str, RegistryModel],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.configured = configured
        self.registry = registry
        self.clock = clock
        self.backends = set(configured) | set(registry)
        self.seen: dict[str, dict[str | None, float]] = {}
        self.latest: dict[str, str | None] = {}
        self._registered: dict[str, float] = {}  # registry version ref -> created, parsed once

    def bind(self, backends: Mapping[str, BackendConfig], pools: Mapping[str, Pool]) -> None:
        """Take the sources from the config's backends and their pools (at start and on
        reload)."""
        self.configured = {
            name: cfg.model_created.timestamp()
            for name, cfg in backends.items()
            if cfg.model_created is not None
        }
        self.registry = {
            name: r.base
            for name, pool in pools.items()
            for r in pool.replicas
            if isinstance(r.base, RegistryModel)
        }
        self.backends = set(backends)

    def created(self, backend: str, version: str | None) -> float:
        """Creation time (epoch seconds) of ``version`` as served by ``backend``."""
        model = self.registry.get(backend)
        if model is not None and (version is None or model.version.ref == version):
            t = self._registered.get(model.version.ref)
            if t is None:
                t = parse_time(model.version.created)
                if t is not None and len(self._registered) < MAX_VERSIONS:
                    self._registered[model.version.ref] = t
            if t is not None:
                return t
        configured = self.configured.get(backend)
        if configured is not None:
            return configured
        versions = self.seen.get(backend)
        if versions is None:
            versions = self.seen[backend] = {}
        first = versions.get(version)
        if first is None:
            if len(versions) >= MAX_VERSIONS:
                del versions[next(iter(versions))]
            first = versions[version] = self.clock.wall()
        return first

    def age(self, backend: str, version: str | None) -> float:
        return max(self.clock.wall() - self.created(backend, version), 0.0)

    def __call__(self, ex: Exchange) -> None:
        answer = ex.answer
        if answer is not None and answer.backend in self.backends:
            self.latest[answer.backend] = answer.model_version
            if answer.backend not in self.configured:
                self.created(answer.backend, answer.model_version)

    def current(self) -> Iterator[tuple[str, float]]:
        """(backend, age) of the version each backend serves now, or answered with last."""
        for backend in sorted(self.backends):
            model = self.registry.get(backend)
            if model is not None:
                yield backend, self.age(backend, model.version.ref)
            elif backend in self.configured or backend in self.latest:
                yield backend, self.age(backend, self.latest.get(backend))


class ModelAgeCollector(Collector):
    def __init__(self, ages: ModelAges) -> None:
        self.ages = ages

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = families.MODEL_AGE
        family = GaugeMetricFamily(f.name, f.help, labels=f.labels)
        for backend, age in self.ages.current():
            family.add_metric([backend], age)
        yield family


class RouteFreshness:
    """One route's freshness check of an answered request: declared features within their
    bounds, and a tier-1 model no older than ``max_model_age``."""

    def __init__(
        self,
        route: str,
        config: FreshnessConfig,
        ages: ModelAges,
        histogram: Histogram,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.ages = ages
        self.clock = clock
        self.max_model_age = config.max_model_age
        self.features = tuple(
            (field, bound, histogram.labels(route, field))
            for field, bound in config.features.items()
        )

    def stale(self, ex: Exchange) -> bool:
        answer = ex.answer
        if answer is None:
            return False
        now = self.clock.wall()
        bad = False
        inputs = ex.inputs or {}
        for field, bound, ages in self.features:
            t = parse_time(inputs.get(field))
            if t is None:
                bad = True
                continue
            age = max(now - t, 0.0)
            ages.observe(age)
            bad = bad or age > bound
        if self.max_model_age is not None and answer.tier_index == 0:
            created = self.ages.created(answer.backend, answer.model_version)
            bad = bad or now - created > self.max_model_age
        return bad


def feature_histogram(registry: CollectorRegistry) -> Histogram:
    return families.FEATURE_AGE.histogram(registry)
