"""Metrics read off finished answers (an observer, O(1) per request): cache-tier hits and
misses, the age of stale answers served, the model version answering per route, and the
tokens an upstream counted (``usage`` of a chat completion) per route, tier and backend."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from failwell.config.models import TierKind
from failwell.contracts import Exchange
from failwell.observe import families
from failwell.observe.children import Children
from failwell.observe.families import TOKENS
from failwell.protocols.chat import usage_of
from failwell.routing.route import Route


class AnswerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cache_tiers: dict[str, set[str]] = {}
        self.lookups = families.CACHE_LOOKUPS.counter(registry)
        self.stale_age = families.STALE_ANSWER_AGE.histogram(registry)
        self.version = families.MODEL_VERSION.gauge(registry)
        self._versions: dict[str, tuple[str, str]] = {}
        self.tokens = TOKENS.counter(registry)
        self._child = Children()

    def bind(self, routes: Mapping[str, Route]) -> None:
        self.cache_tiers = {
            name: {t.name for t in route.chain.tiers if t.kind is TierKind.CACHE}
            for name, route in routes.items()
        }

    def __call__(self, ex: Exchange) -> None:
        route = ex.route
        if route is None or route not in self.cache_tiers:
            return
        caches = self.cache_tiers[route]
        answer = ex.answer
        if answer is not None and answer.tier not in caches:
            usage = usage_of(answer.outputs)
            if usage is not None:
                child, tier, backend = self._child, answer.tier, answer.backend
                child(self.tokens, route, tier, backend, "prompt").inc(usage[0])
                child(self.tokens, route, tier, backend, "completion").inc(usage[1])
        if caches:
            if answer is not None and answer.tier in caches:
                self.lookups.labels(route, "hit").inc()
                if answer.age is not None:
                    self.stale_age.labels(route).observe(answer.age)
            else:
                failures = answer.failures if answer is not None else []
                for failure in failures:
                    if failure.tier in caches:
                        self.lookups.labels(route, failure.kind).inc()
        if answer is not None and answer.model_version and answer.tier not in caches:
            seen = (answer.backend, answer.model_version)
            if self._versions.get(route) != seen:
                old = self._versions.get(route)
                if old is not None:
                    self.version.remove(route, *old)
                self._versions[route] = seen
                self.version.labels(route, *seen).set(1)
