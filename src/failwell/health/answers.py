"""Metrics read off finished answers (an observer, O(1) per request): cache-tier hits and
misses, the age of stale answers served, the model version answering per route, and the
tokens an upstream counted (``usage`` of a chat completion) per route, tier and backend."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from failwell.config.models import TierKind
from failwell.contracts import Exchange
from failwell.observe import families
from failwell.observe.families import TOKENS
from failwell.observe.tally import CounterTally, HistogramTally
from failwell.protocols.chat import usage_of
from failwell.routing.route import Route


class AnswerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cache_tiers: dict[str, set[str]] = {}
        self.lookups = CounterTally(families.CACHE_LOOKUPS, registry)
        self.stale_age = HistogramTally(families.STALE_ANSWER_AGE, registry)
        self.version = families.MODEL_VERSION.gauge(registry)
        self._versions: dict[str, tuple[str, str]] = {}
        self.tokens = CounterTally(TOKENS, registry)

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
            if usage is not None and min(usage) >= 0:  # a counter cannot fall
                tokens, tier, backend = self.tokens, answer.tier, answer.backend
                tokens.inc((route, tier, backend, "prompt"), usage[0])
                tokens.inc((route, tier, backend, "completion"), usage[1])
        if caches:
            if answer is not None and answer.tier in caches:
                self.lookups.inc((route, "hit"))
                if answer.age is not None:
                    self.stale_age.observe((route,), answer.age)
            else:
                failures = answer.failures if answer is not None else []
                for failure in failures:
                    if failure.tier in caches:
                        self.lookups.inc((route, failure.kind))
        if answer is not None and answer.model_version and answer.tier not in caches:
            seen = (answer.backend, answer.model_version)
            if self._versions.get(route) != seen:
                old = self._versions.get(route)
                if old is not None:
                    self.version.remove(route, *old)
                self._versions[route] = seen
                self.version.labels(route, *seen).set(1)
