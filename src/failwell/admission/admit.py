"""Admission for one request, after authentication: the key's rate limit, the route's rate
limit (scaled to the standby's capacity after a failover), then a slot of the route's
concurrency limit. Refusals are counted in metrics; the queue depth is a gauge per route."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from failwell.admission.concurrency import ConcurrencyLimit
from failwell.admission.rate import Gcra, RateLimiter, RedisGcra
from failwell.admission.standby import capacity_scale
from failwell.config.models import FailwellConfig, TierKind
from failwell.config.security import Priority, RateConfig
from failwell.errors import Overloaded, RateLimited
from failwell.routing.assemble import Gateway


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as admission needs it."""

    name: str
    priority: Priority
    rate: RateConfig | None


@dataclass(slots=True)
class RoutePolicy:
    rate: RateConfig | None
    concurrency: ConcurrencyLimit | None
    scale: Callable[[], float]


def _full() -> float:
    return 1.0


class Admission:
    def __init__(self, gateway: Gateway) -> None:
        config = gateway.config
        self.key_rate = config.security.key_rate
        self.limiter: RateLimiter = (
            RedisGcra(config.security.redis) if config.security.redis else Gcra(gateway.clock)
        )
        self.routes = {name: self._policy(gateway, config, name) for name in config.routes}
        r = gateway.metrics.registry
        self.refused = Counter(
            "failwell_admission_refused",
            "Requests refused by admission: rate_limited (429) or shed (503), by route.",
            ["route", "reason", "priority"],
            registry=r,
        )
        queue = Gauge(
            "failwell_admission_queue_depth",
            "Requests waiting for a concurrency slot, by route.",
            ["route"],
            registry=r,
        )
        active = Gauge(
            "failwell_admission_active",
            "Requests holding a concurrency slot, by route.",
            ["route"],
            registry=r,
        )
        scale = Gauge(
            "failwell_admission_capacity_scale",
            "Share of the route's limits admitted now (below 1 while a standby serves).",
            ["route"],
            registry=r,
        )
        for name, policy in self.routes.items():
            scale.labels(name).set_function(policy.scale)
            limit = policy.concurrency
            if limit is not None:
                queue.labels(name).set_function(limit.queue_depth)
                active.labels(name).set_function(limit.in_use)

    @staticmethod
    def _policy(gateway: Gateway, config: FailwellConfig, name: str) -> RoutePolicy:
        rc = config.routes[name]
        first = next((t for t in rc.tiers if t.kind is TierKind.MODEL), None)
        scale = _full
        if first is not None and first.backend in gateway.pools:
            backend = config.backends[first.backend]
            capacities = {r.label: r.capacity for r in backend.replicas}
            scale = capacity_scale(gateway.pools[first.backend], capacities)
        cc = rc.admission.concurrency
        limit = (
            ConcurrencyLimit(name, cc.limit, cc.queue, cc.queue_timeout, scale)
            if cc is not None
            else None
        )
        return RoutePolicy(rc.admission.rate, limit, scale)

    async def admit(self, route: str, caller: Caller | None) -> ConcurrencyLimit | None:
        """Admit a request to ``route``: the concurrency slot to release afterwards (or None).
        Raises RateLimited (429) or Overloaded (503), both with a Retry-After."""
        priority = caller.priority if caller is not None else Priority.INTERACTIVE
        if caller is not None:
            rate = caller.rate or self.key_rate
            if rate is not None:
                await self._rate(f"key:{caller.name}", rate, 1.0, route, priority, "key")
        policy = self.routes.get(route)
        if policy is None:
            return None
        if policy.rate is not None:
            await self._rate(
                f"route:{route}", policy.rate, policy.scale(), route, priority, "route"
            )
        limit = policy.concurrency
        if limit is None:
            return None
        try:
            await limit.acquire(priority)
        except Overloaded:
            self.refused.labels(route, "shed", priority.value).inc()
            raise
        return limit

    async def _rate(
        self, key: str, rate: RateConfig, scale: float, route: str, priority: Priority, who: str
    ) -> None:
        wait = await self.limiter.acquire(key, rate.rate * scale, rate.burst)
        if wait > 0:
            self.refused.labels(route, f"rate_limited_{who}", priority.value).inc()
            raise RateLimited(
                f"over the {who} rate limit of {rate.rate:g}/s; retry in {wait:.3f}s",
                retry_after=max(1.0, math.ceil(wait)),
            )

    async def start(self) -> None:
        """A gateway service: nothing to start; the Redis connection opens on first use."""

    async def stop(self) -> None:
        if isinstance(self.limiter, RedisGcra):
            await self.limiter.close()
