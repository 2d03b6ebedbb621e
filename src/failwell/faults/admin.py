"""Wires fault injection, flags and the canary drill into a gateway, and serves them under
/admin/ (every change goes to ``Gateway.audit``):

    GET    /admin/faults                    the active faults
    POST   /admin/faults                    add one (a ``FaultSpec`` as JSON) → 201
    DELETE /admin/faults[?id=f1|?backend=B] clear one, a backend's, or all
    GET    /admin/flags                     every tier and backend flag with its state
    POST   /admin/flags                     {"target": "backend:light", "on": false}
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from failwell.clock import Clock
from failwell.config.control import ControlConfig
from failwell.contracts import AdminCall, AdminRoute, AuditSink, Request
from failwell.errors import ConfigError, ConfigIssue, Conflict, InvalidInput, TierFailed
from failwell.faults.canary_drill import CanaryDrill
from failwell.faults.flags import Flags, FlagTarget
from failwell.faults.injection import Fault, FaultBook, FaultSpec, FaultyAdapter
from failwell.observe import families
from failwell.routing.chain import TierGate
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.routing.tiers import ModelTier, Tier


class FaultControl:
    """The fault book, the flags and the canary drill of one gateway.

    Built once; ``decorate`` applies it to the pools and routes of every topology the gateway
    serves (at start-up and on each reload): each new replica's adapter is wrapped for fault
    injection, each chain gets the gate that obeys the flags and the drill. Flags, active
    faults and the drill's state live here, so a reload keeps them."""

    def __init__(
        self,
        config: ControlConfig,
        routes: Mapping[str, Route],
        pools: Mapping[str, Pool],
        audit: AuditSink,
        registry: CollectorRegistry,
        clock: Clock,
    ) -> None:
        self.config = config
        self.routes, self.pools, self._audit = routes, pools, audit
        self.book = FaultBook(clock)
        self.faults_enabled = config.faults
        path = None if config.flags_path == ":memory:" else Path(config.flags_path)
        try:
            self.flags = Flags(path)
        except ValueError as exc:
            raise ConfigError([ConfigIssue("control.flags_path", str(exc))]) from None
        self.injected = families.FAULTS_INJECTED.counter(registry)
        cfg = config.canary_drill
        self.canary = (
            CanaryDrill(cfg, cfg.tier or "", registry) if cfg.enabled and cfg.route else None
        )

    def _drill_tier(self, routes: Mapping[str, Route]) -> str | None:
        """The tier the canary drill skips, checked against ``routes`` (a ConfigError names the
        key when the route or tier is gone)."""
        cfg = self.config.canary_drill
        if not cfg.enabled:
            return None
        route = routes.get(cfg.route or "")
        if route is None:
            raise ConfigError(
                [ConfigIssue("control.canary_drill.route", f"unknown route {cfg.route!r}")]
            )
        names = [t.name for t in route.chain.tiers]
        tier = cfg.tier or names[0]
        if tier not in names[:-1]:
            raise ConfigError(
                [ConfigIssue("control.canary_drill.tier", f"not a tier before the last: {tier!r}")]
            )
        return tier

    def decorate(
        self, pools: Mapping[str, Pool], built: Set[str], routes: Mapping[str, Route]
    ) -> None:
        """Wrap the replicas of the pools in ``built`` (the others are wrapped already) and gate
        every chain of ``routes``. Runs before the topology serves a request."""
        tier = self._drill_tier(routes)
        if self.canary is not None and tier is not None:
            self.canary.tier = tier
        for name in built:
            for replica in pools[name].replicas:
                self.wrap(name, replica)
        for route in routes.values():
            route.chain.gate = self._gate(route)

    def wrap(self, backend: str, replica: Replica) -> Replica:
        """Make ``replica`` obey the fault book (when faults are on): the configured replicas at
        ``decorate``, each managed replica as the supervisor starts it."""
        if self.faults_enabled:
            replica.adapter = FaultyAdapter(
                replica.adapter, self.book, backend, replica.label, self._count
            )
        return replica

    def admin_routes(self) -> list[AdminRoute]:
        return [
            AdminRoute("GET", "/admin/faults", self.list_faults),
            AdminRoute("POST", "/admin/faults", self.add_fault),
            AdminRoute("DELETE", "/admin/faults", self.clear_faults),
            AdminRoute("GET", "/admin/flags", self.list_flags),
            AdminRoute("POST", "/admin/flags", self.set_flag),
        ]

    def _count(self, fault: Fault) -> None:
        self.injected.labels(fault.spec.backend, fault.spec.kind.value).inc()

    def _gate(self, route: Route) -> TierGate:
        flags, canary, name = self.flags, self.canary, route.name
        # The flag names of each tier, built once: the hot path only looks them up.
        names = {
            t.name: [str(FlagTarget.tier(name, t.name))]
            + ([str(FlagTarget.backend(t.pool.backend))] if isinstance(t, ModelTier) else [])
            for t in route.chain.tiers
        }

        def gate(tier: Tier, request: Request) -> None:
            if flags.any_off:
                for flag in names[tier.name]:
                    if not flags.enabled(flag):
                        raise TierFailed(f"switched off by flag {flag}", "switched_off")
            if canary is not None:
                canary.skip(name, tier, request)

        return gate

    # -- faults -----------------------------------------------------------------------------

    async def list_faults(self, call: AdminCall) -> tuple[int, Any]:
        now = self.book.now()
        return 200, {"faults": [f.describe(now) for f in self.book.active()]}

    async def add_fault(self, call: AdminCall) -> tuple[int, Any]:
        if not self.faults_enabled:
            raise Conflict("fault injection is disabled in this gateway (control.faults: false)")
        spec = _parse_spec(call.json())
        pool = self.pools.get(spec.backend)
        if pool is None:
            known = ", ".join(sorted(self.pools))
            raise InvalidInput(f"unknown backend {spec.backend!r}; one of: {known}", "backend")
        labels = [r.label for r in pool.replicas]
        if spec.replica is not None and spec.replica not in labels:
            raise InvalidInput(
                f"backend {spec.backend!r} has no replica {spec.replica!r}; one of: "
                + ", ".join(labels),
                "replica",
            )
        longest = self.config.max_fault_duration
        if spec.duration > longest:
            raise InvalidInput(
                f"duration is over control.max_fault_duration ({longest:g}s)", "duration"
            )
        fault = self.book.add(spec)
        detail = fault.describe(self.book.now())
        self._audit("fault.add", detail, call.exchange.caller)
        return 201, {"fault": detail}

    async def clear_faults(self, call: AdminCall) -> tuple[int, Any]:
        ids, backends = call.query.get("id"), call.query.get("backend")
        if ids:
            gone = [f for f in (self.book.remove(i) for i in ids) if f is not None]
            if not gone:
                raise InvalidInput(f"no active fault with id {', '.join(ids)}", "id", status=404)
        else:
            gone = self.book.clear(backends[0] if backends else None)
        cleared = [f.id for f in gone]
        self._audit("fault.clear", {"cleared": cleared, "query": call.query}, call.exchange.caller)
        return 200, {"cleared": cleared}

    # -- flags ------------------------------------------------------------------------------

    def targets(self) -> list[str]:
        tiers = [
            str(FlagTarget.tier(r, t.name))
            for r, route in self.routes.items()
            for t in route.chain.tiers
        ]
        return tiers + [str(FlagTarget.backend(b)) for b in self.pools]

    async def list_flags(self, call: AdminCall) -> tuple[int, Any]:
        flags = {t: self.flags.enabled(t) for t in self.targets()}
        return 200, {"flags": flags, "off": self.flags.off()}

    async def set_flag(self, call: AdminCall) -> tuple[int, Any]:
        body = call.json()
        if not isinstance(body, dict):
            raise InvalidInput("the body must be a JSON object", status=400)
        target, on = body.get("target"), body.get("on")
        if not isinstance(target, str):
            raise InvalidInput("target is required: tier:ROUTE/TIER or backend:NAME", "target")
        if not isinstance(on, bool):
            raise InvalidInput("on is required: true or false", "on")
        if target not in self.targets():
            raise InvalidInput(f"no such flag {target!r}; GET /admin/flags lists them", "target")
        changed = self.flags.set(target, on)
        detail = {"target": target, "on": on, "changed": changed}
        self._audit("flag.set", detail, call.exchange.caller)
        return 200, detail


def _parse_spec(body: Any) -> FaultSpec:
    try:
        return FaultSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        where = f"{field}: " if field else ""
        raise InvalidInput(f"{where}{first['msg']}", field) from None
