"""The data plane of one config: pools of replicas behind adapters, tiers, chains and routes.

``build_topology`` is the one place pools and routes are made, at start-up and on every
config reload; a reload passes the running topology so backends whose config did not change
keep their pool (breaker state, loaded models, connections).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failwell.backends.http import client_for
from failwell.backends.openai import OpenAIAdapter
from failwell.backends.python import PythonAdapter
from failwell.backends.v2 import V2Adapter
from failwell.clock import Clock
from failwell.config.backends import BackendConfig, WireProtocol
from failwell.config.load import resolve_import
from failwell.config.models import FailwellConfig, Fallback, RouteConfig, TierConfig, TierKind
from failwell.contracts import Adapter, Request
from failwell.observe.metrics import Metrics
from failwell.resilience.breaker import Breaker
from failwell.resilience.retry import RetryPolicy
from failwell.routing.chain import StoreAnswer, TierChain
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.routing.rows import RowFallback
from failwell.routing.tensor_schema import TensorSchema
from failwell.routing.tiers import EVERYTHING, CacheTier, ModelTier, RulesTier, StaticTier, Tier
from failwell.store.cache import AnswerCache

DEFAULT_QUALITY = {TierKind.RULES: "generic", TierKind.CACHE: "stale", TierKind.STATIC: "minimal"}

# Makes the adapter of an in-process (python) backend; the gateway passes one that serves
# ``model_ref`` backends from the registry.
PythonModel = Callable[[str, BackendConfig], Adapter]


def default_reserve(kind: TierKind, index: int, deadline: float) -> float:
    """Time the earlier tiers leave for a tier unless its config says otherwise."""
    if kind is TierKind.MODEL:
        return 0.0 if index == 0 else deadline / 4
    if kind is TierKind.RULES:
        return min(0.010, deadline / 10)
    if kind is TierKind.CACHE:
        return min(0.005, deadline / 20)
    return 0.0


def python_model(name: str, cfg: BackendConfig) -> Adapter:
    assert cfg.target is not None
    return PythonAdapter(name, cfg.target, cfg.args, cfg.workers, cfg.version)


def build_breaker(
    name: str, label: str, cfg: BackendConfig, metrics: Metrics, clock: Clock
) -> Breaker:
    b = Breaker(
        cfg.breaker.failure_threshold, cfg.breaker.recovery, cfg.breaker.half_open_max, clock
    )
    b.on_change(lambda old, new: metrics.breaker_changed(name, label, old, new))
    metrics.breaker_init(name, label)
    return b


def build_replica(
    name: str,
    cfg: BackendConfig,
    url: str,
    label: str,
    metrics: Metrics,
    clock: Clock,
    priority: int = 0,
    zone: str = "default",
) -> Replica:
    """One HTTP replica of backend ``name``: its adapter and its breaker (with metrics)."""
    b = Breaker(
        cfg.breaker.failure_threshold, cfg.breaker.recovery, cfg.breaker.half_open_max, clock
    )
    b.on_change(lambda old, new: metrics.breaker_changed(name, label, old, new))
    metrics.breaker_init(name, label)
    http = client_for(name, cfg)
    adapter: Adapter
    if cfg.protocol is WireProtocol.V2:
        adapter = V2Adapter(http, url, cfg.model or name, label, cfg.version, cfg.tensor_data)
    else:
        adapter = OpenAIAdapter(http, url, cfg.model or name, label, cfg.version, cfg.dimension)
    return Replica(label, adapter, b, priority, zone)


def build_pool(
    name: str,
    cfg: BackendConfig,
    metrics: Metrics,
    clock: Clock,
    model: PythonModel = python_model,
) -> Pool:
    """The pool of backend ``name``: its configured replicas (a managed backend's replicas join
    it as the supervisor makes them ready)."""
    retry = RetryPolicy(cfg.retry.attempts, cfg.retry.backoff, cfg.retry.max_backoff)
    if cfg.protocol is WireProtocol.PYTHON:
        b = build_breaker(name, "local", cfg, metrics, clock)
        replicas = [Replica("local", model(name, cfg), b)]
    else:
        replicas = [
            build_replica(name, cfg, rc.url, rc.label, metrics, clock, rc.priority, rc.zone)
            for rc in cfg.replicas
        ]
    return Pool(name, replicas, retry, cfg.timeout, clock)


def build_tier(
    index: int,
    tc: TierConfig,
    route: RouteConfig,
    pools: Mapping[str, Pool],
    cache: AnswerCache,
    key: Any,
    supports: frozenset[str] = EVERYTHING,
) -> Tier:
    kind = tc.kind or TierKind.CACHE
    reserve = tc.reserve if tc.reserve is not None else default_reserve(kind, index, route.deadline)
    if kind is TierKind.MODEL:
        quality = tc.quality or ("full" if index == 0 else "reduced")
        return ModelTier(tc.name, quality, reserve, pools[tc.backend or ""], supports)
    quality = tc.quality or DEFAULT_QUALITY[kind]
    if kind is TierKind.RULES:
        assert tc.rules is not None
        return RulesTier(tc.name, quality, reserve, resolve_import(tc.rules), tc.rules)
    if kind is TierKind.CACHE:
        return CacheTier(tc.name, quality, reserve, cache, key, route.cache.ttl, cache.clock)
    return StaticTier(tc.name, quality, reserve, tc.static_value)


def _supports(backend: BackendConfig | None) -> frozenset[str]:
    return EVERYTHING if backend is None else backend.supports


def build_route(
    name: str,
    rc: RouteConfig,
    pools: Mapping[str, Pool],
    cache: AnswerCache,
    metrics: Metrics,
    clock: Clock,
    backends: Mapping[str, BackendConfig] | None = None,
) -> Route:
    holder: list[Route] = []
    backends = backends or {}

    def key(request: Request) -> str:
        return holder[0].cache_key(request)

    def store(request: Request, outputs: Any, version: str | None) -> None:
        if "tools" not in request.needs:  # a tool call answers one turn of one agent
            cache.put(key(request), outputs, version)

    tiers = [
        build_tier(i, tc, rc, pools, cache, key, _supports(backends.get(tc.backend or "")))
        for i, tc in enumerate(rc.tiers)
    ]
    wants_store = any(t.kind is TierKind.CACHE for t in tiers)  # no cache tier: nothing to store
    schema = TensorSchema(name, rc.tensors) if rc.tensors is not None else None
    conform = schema.conform if schema is not None else None
    rows = RowFallback(schema) if schema is not None and rc.fallback is Fallback.ROWS else None
    if rows is not None and wants_store:  # each row of a tier-1 batch too, for the cache tier

        def store_rows(request: Request, outputs: Any, version: str | None) -> None:
            store(request, outputs, version)
            # hashing every row costs about as much as the batch's key: after the answer
            asyncio.get_running_loop().call_soon(
                rows.store, request, outputs, lambda row, answer: store(row, answer, version)
            )

        chosen: StoreAnswer | None = store_rows
    else:
        chosen = store if wants_store else None
    chain = TierChain(name, tiers, metrics, chosen, clock, conform, rows)
    route = Route(name, rc, chain, schema)
    holder.append(route)
    return route


@dataclass(frozen=True)
class Topology:
    """What one config serves: its pools and routes. ``built`` names the pools made for it
    (the others were carried over from the running topology)."""

    config: FailwellConfig
    pools: dict[str, Pool]
    routes: dict[str, Route]
    built: frozenset[str]

    def replaced(self, running: Topology) -> list[Pool]:
        """Pools of ``running`` that this topology no longer uses (to close once drained)."""
        return [p for n, p in running.pools.items() if self.pools.get(n) is not p]


def build_topology(
    config: FailwellConfig,
    cache: AnswerCache,
    metrics: Metrics,
    clock: Clock,
    model: PythonModel = python_model,
    running: Topology | None = None,
    opened: list[Pool] | None = None,
) -> Topology:
    """Pools and routes for ``config``; a pool of ``running`` whose backend config is unchanged
    is kept as it is, every new pool is also appended to ``opened`` as it is made (so a caller
    can close them when a later step fails). Blocking (in-process models load here): call it in
    a thread on reload."""
    pools: dict[str, Pool] = {}
    built: set[str] = set()
    for name, bc in config.backends.items():
        if running is not None and running.config.backends.get(name) == bc:
            pools[name] = running.pools[name]
        else:
            pools[name] = build_pool(name, bc, metrics, clock, model)
            built.add(name)
            if opened is not None:
                opened.append(pools[name])
    routes = {
        name: build_route(name, rc, pools, cache, metrics, clock, config.backends)
        for name, rc in config.routes.items()
    }
    return Topology(config, pools, routes, frozenset(built))
