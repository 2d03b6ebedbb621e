"""Build the running gateway from a validated config: pools, tiers, chains, routes, stores."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from failwell.backends.base import Adapter, Request
from failwell.backends.http import HttpUpstream
from failwell.backends.openai import OpenAIAdapter
from failwell.backends.python import PythonAdapter
from failwell.backends.v2 import V2Adapter
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.load import resolve_import
from failwell.config.models import (
    BackendConfig,
    FailwellConfig,
    RouteConfig,
    TierConfig,
    TierKind,
    WireProtocol,
)
from failwell.config.registry import RegistryConfig
from failwell.config.security import upstream_context
from failwell.observe.metrics import Metrics
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.resilience.retry import RetryPolicy
from failwell.routing.chain import TierChain
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.routing.tiers import CacheTier, ModelTier, RulesTier, StaticTier, Tier
from failwell.store.cache import AnswerCache

if TYPE_CHECKING:
    from failwell.api.exchange import Exchange

DEFAULT_QUALITY = {TierKind.RULES: "generic", TierKind.CACHE: "stale", TierKind.STATIC: "minimal"}


def default_reserve(kind: TierKind, index: int, deadline: float) -> float:
    """Time the earlier tiers leave for a tier unless its config says otherwise."""
    if kind is TierKind.MODEL:
        return 0.0 if index == 0 else deadline / 4
    if kind is TierKind.RULES:
        return min(0.010, deadline / 10)
    if kind is TierKind.CACHE:
        return min(0.005, deadline / 20)
    return 0.0


def build_pool(
    name: str,
    cfg: BackendConfig,
    metrics: Metrics,
    clock: Clock,
    registry: RegistryConfig | None = None,
) -> Pool:
    def breaker(replica: str) -> Breaker:
        b = Breaker(
            cfg.breaker.failure_threshold, cfg.breaker.recovery, cfg.breaker.half_open_max, clock
        )
        b.on_change(lambda old, new: metrics.breaker_changed(name, replica, old, new))
        metrics.breaker_init(name, replica)
        return b

    retry = RetryPolicy(cfg.retry.attempts, cfg.retry.backoff, cfg.retry.max_backoff)
    model = cfg.model or name
    if cfg.protocol is WireProtocol.PYTHON:
        assert cfg.target is not None
        adapter: Adapter
        if cfg.model_ref is not None:
            from failwell.registry.serving import registry_adapter

            adapter = registry_adapter(name, cfg, registry or RegistryConfig())
        else:
            adapter = PythonAdapter(name, cfg.target, cfg.args, cfg.workers, cfg.version)
        replicas = [Replica("local", adapter, breaker("local"))]
    else:
        headers = {"authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else None
        replicas = []
        tls = upstream_context(cfg.tls) if cfg.tls is not None else None
        for rc in cfg.replicas:
            http = HttpUpstream(name, cfg.max_connections, headers, tls)
            if cfg.protocol is WireProtocol.V2:
                adapter = V2Adapter(http, rc.url, model, rc.label, cfg.version)
            else:
                adapter = OpenAIAdapter(http, rc.url, model, rc.label, cfg.version)
            replicas.append(Replica(rc.label, adapter, breaker(rc.label), rc.priority, rc.zone))
    return Pool(name, replicas, retry, cfg.timeout, clock)


def build_tier(
    index: int,
    tc: TierConfig,
    route: RouteConfig,
    pools: dict[str, Pool],
    cache: AnswerCache,
    key: Any,
) -> Tier:
    kind = tc.kind or TierKind.CACHE
    reserve = tc.reserve if tc.reserve is not None else default_reserve(kind, index, route.deadline)
    if kind is TierKind.MODEL:
        quality = tc.quality or ("full" if index == 0 else "reduced")
        return ModelTier(tc.name, quality, reserve, pools[tc.backend or ""])
    quality = tc.quality or DEFAULT_QUALITY[kind]
    if kind is TierKind.RULES:
        assert tc.rules is not None
        return RulesTier(tc.name, quality, reserve, resolve_import(tc.rules), tc.rules)
    if kind is TierKind.CACHE:
        return CacheTier(tc.name, quality, reserve, cache, key, route.cache.ttl)
    return StaticTier(tc.name, quality, reserve, tc.static_value)


class Service(Protocol):
    """A long-lived task beside the request path (prober, log writer, SLO evaluator ...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


Observer = Callable[["Exchange"], None]
AuditSink = Callable[[str, dict[str, Any], str | None], None]  # (action, detail, caller)
BeforeRespond = Callable[["Exchange"], Awaitable[None]]  # may raise a FailwellError
ReadinessCheck = Callable[[], dict[str, dict[str, Any]]]  # name → {"ok": bool, ...}


class Gateway:
    """Everything a running gateway holds, built once from the config.

    Extension points: ``services`` start and stop with the gateway; ``observers`` see every
    finished exchange at the edge (after its response is sent); ``admin`` holds the /admin/
    handlers; ``audit_sinks`` receive every admin and configuration action (``audit``);
    ``before_respond`` hooks are awaited just before a response starts (the sync inference log
    holds the answer there until its record is durable); ``readiness_checks`` add to
    /health/ready."""

    def __init__(self, config: FailwellConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        from failwell.api.admin import AdminApi
        from failwell.control.fault_admin import install_control
        from failwell.control.rollout_admin import attach_rollouts
        from failwell.registry.serving import attach_registry

        self.config = config
        self.clock = clock
        self.services: list[Service] = []
        self.observers: list[Observer] = []
        self.audit_sinks: list[AuditSink] = []
        self.reload_hooks: list[Callable[[FailwellConfig], None]] = []  # see control/config_reload
        self.before_respond: list[BeforeRespond] = []
        self.readiness_checks: list[ReadinessCheck] = []
        self.admin = AdminApi()
        self.metrics = Metrics()
        self.cache = AnswerCache(config.gateway.cache.path, config.gateway.cache.max_entries)
        self.pools = {
            name: build_pool(name, bc, self.metrics, clock, config.registry)
            for name, bc in config.backends.items()
        }
        self.routes = {name: self._route(name, rc) for name, rc in config.routes.items()}
        from failwell.effects.inference_log import attach

        self.log = attach(self)
        self.control = install_control(self)  # fault injection, flags, canary drill
        attach_registry(self)
        attach_rollouts(self)

    def _route(self, name: str, rc: RouteConfig) -> Route:
        holder: list[Route] = []

        def key(request: Request) -> str:
            return holder[0].cache_key(request)

        def store(request: Request, outputs: Any, version: str | None) -> None:
            self.cache.put(key(request), outputs, version)

        tiers = [
            build_tier(i, tc, rc, self.pools, self.cache, key) for i, tc in enumerate(rc.tiers)
        ]
        wants_store = any(
            t.kind is TierKind.CACHE for t in tiers
        )  # no cache tier: nothing to store
        chain = TierChain(name, tiers, self.metrics, store if wants_store else None, self.clock)
        route = Route(name, rc, chain)
        holder.append(route)
        return route

    def audit(self, action: str, detail: dict[str, Any], caller: str | None = None) -> None:
        """Record an admin or configuration action (a fault added, a flag flipped, a reload)."""
        for sink in self.audit_sinks:
            sink(action, detail, caller)

    def breaker_states(self) -> dict[str, dict[str, BreakerState]]:
        return {n: {r.label: r.breaker.state for r in p.replicas} for n, p in self.pools.items()}

    async def start(self) -> None:
        await self.cache.start()
        for service in self.services:
            await service.start()

    async def close(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                await service.stop()
        for pool in self.pools.values():
            for replica in pool.replicas:
                with contextlib.suppress(Exception):
                    await replica.adapter.close()
        await self.cache.close()
