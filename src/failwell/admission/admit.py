"""Admission for one request, after authentication: the key's rate limit, the route's rate
limit (scaled to the standby's capacity after a failover), then a slot of the route's
concurrency limit. Refusals are counted in metrics; the queue depth is a gauge per route."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from failwell.admission.concurrency import ConcurrencyLimit
from failwell.admission.rate import Gcra, RateLimiter, RedisGcra
from failwell.admission.standby import capacity_scale
from failwell.clock import Clock
from failwell.config.backends import BackendConfig
from failwell.config.models import FailwellConfig, TierKind
from failwell.config.security import AdmissionConfig, Priority, RateConfig, SecurityConfig
from failwell.errors import Overloaded, RateLimited
from failwell.observe import families
from failwell.routing.pool import Pool

INTERACTIVE = Priority.INTERACTIVE  # read once: an enum member off its class is a slow lookup


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


@dataclass(frozen=True, slots=True)
class _Source:
    """What a route's policy is made of: when it is unchanged on reload, the policy (and the
    slots it has handed out) is kept."""

    admission: AdmissionConfig
    pool: Pool | None
    backend: BackendConfig | None


class Admission:
    """Built once per gateway; ``bind`` sets the route policies of each config."""

    def __init__(self, security: SecurityConfig, registry: CollectorRegistry, clock: Clock) -> None:
        self.key_rate = security.key_rate
        self.limiter: RateLimiter = RedisGcra(security.redis) if security.redis else Gcra(clock)
        self.routes: dict[str, RoutePolicy] = {}
        self._sources: dict[str, _Source] = {}
        self.refused = families.ADMISSION_REFUSED.counter(registry)
        self._queue = families.ADMISSION_QUEUE_DEPTH.gauge(registry)
        self._active = families.ADMISSION_ACTIVE.gauge(registry)
        self._scale = families.ADMISSION_CAPACITY_SCALE.gauge(registry)

    def bind(self, config: FailwellConfig, pools: Mapping[str, Pool]) -> None:
        """The route policies of ``config`` from now on; a route whose admission config, tier-1
        pool and backend are unchanged keeps its policy (and the slots in use)."""
        routes, sources = {}, {}
        for name, rc in config.routes.items():
            first = next((t for t in rc.tiers if t.kind is TierKind.MODEL), None)
            backend = first.backend if first is not None else None
            source = _Source(
                rc.admission,
                pools.get(backend) if backend else None,
                config.backends.get(backend) if backend else None,
            )
            kept = self.routes.get(name)
            if kept is not None and self._sources.get(name) == source:
                routes[name] = kept
            else:
                routes[name] = self._policy(name, source)
                self._export(name, routes[name])
            sources[name] = source
        self.routes, self._sources = routes, sources

    @staticmethod
    def _policy(name: str, source: _Source) -> RoutePolicy:
        scale = _full
        if source.pool is not None and source.backend is not None:
            capacities = {r.label: r.capacity for r in source.backend.replicas}
            scale = capacity_scale(source.pool, capacities)
        cc = source.admission.concurrency
        limit = (
            ConcurrencyLimit(name, cc.limit, cc.queue, cc.queue_timeout, scale)
            if cc is not None
            else None
        )
        return RoutePolicy(source.admission.rate, limit, scale)

    def _export(self, name: str, policy: RoutePolicy) -> None:
        self._scale.labels(name).set_function(policy.scale)
        limit = policy.concurrency
        if limit is not None:
            self._queue.labels(name).set_function(limit.queue_depth)
            self._active.labels(name).set_function(limit.in_use)

    async def admit(self, route: str, caller: Caller | None) -> ConcurrencyLimit | None:
        """Admit a request to ``route``: the concurrency slot to release afterwards (or None).
        Raises RateLimited (429) or Overloaded (503), both with a Retry-After."""
        priority = caller.priority if caller is not None else INTERACTIVE
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
