"""Wires fault injection, flags and the canary drill into a gateway, and serves them under
/admin/ (every change goes to ``Gateway.audit``):

    GET    /admin/faults                    the active faults
    POST   /admin/faults                    add one (a ``FaultSpec`` as JSON) → 201
    DELETE /admin/faults[?id=f1|?backend=B] clear one, a backend's, or all
    GET    /admin/flags                     every tier and backend flag with its state
    POST   /admin/flags                     {"target": "backend:light", "on": false}
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from pydantic import ValidationError

from failwell.api.admin import AdminCall
from failwell.backends.base import Request
from failwell.control.drill_canary import CanaryDrill
from failwell.control.faults import Fault, FaultBook, FaultSpec, FaultyAdapter
from failwell.control.flags import Flags, FlagTarget
from failwell.errors import ConfigError, ConfigIssue, Conflict, InvalidInput, TierFailed
from failwell.routing.chain import TierGate
from failwell.routing.tiers import ModelTier, Tier

if TYPE_CHECKING:
    from failwell.routing.assemble import Gateway


class Control:
    """The fault book, the flags and the canary drill of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        cfg = gateway.config.control
        self.gateway = gateway
        self.book = FaultBook(gateway.clock)
        self.faults_enabled = cfg.faults
        path = None if cfg.flags_path == ":memory:" else Path(cfg.flags_path)
        try:
            self.flags = Flags(path)
        except ValueError as exc:
            raise ConfigError([ConfigIssue("control.flags_path", str(exc))]) from None
        self.injected = Counter(
            "failwell_faults_injected",
            "Calls that met an injected fault, by backend and fault kind.",
            ["backend", "kind"],
            registry=gateway.metrics.registry,
        )
        self.canary = self._canary()

    def _canary(self) -> CanaryDrill | None:
        cfg = self.gateway.config.control.canary_drill
        if not cfg.enabled:
            return None
        route = self.gateway.routes.get(cfg.route or "")
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
        return CanaryDrill(cfg, tier, self.gateway.metrics.registry)

    def install(self) -> None:
        gw = self.gateway
        if self.faults_enabled:
            for name, pool in gw.pools.items():
                for replica in pool.replicas:
                    replica.adapter = FaultyAdapter(
                        replica.adapter, self.book, name, replica.label, self._count
                    )
        for name, route in gw.routes.items():
            route.chain.gate = self._gate(name)
        if self.canary is not None:
            gw.services.append(self.canary)
            gw.observers.append(self.canary.observe)
        for method, path, handler in (
            ("GET", "/admin/faults", self.list_faults),
            ("POST", "/admin/faults", self.add_fault),
            ("DELETE", "/admin/faults", self.clear_faults),
            ("GET", "/admin/flags", self.list_flags),
            ("POST", "/admin/flags", self.set_flag),
        ):
            gw.admin.add(method, path, handler)

    def _count(self, fault: Fault) -> None:
        self.injected.labels(fault.spec.backend, fault.spec.kind.value).inc()

    def _gate(self, route: str) -> TierGate:
        flags, canary = self.flags, self.canary
        # The flag names of each tier, built once: the hot path only looks them up.
        names = {
            t.name: [str(FlagTarget.tier(route, t.name))]
            + ([str(FlagTarget.backend(t.pool.backend))] if isinstance(t, ModelTier) else [])
            for t in self.gateway.routes[route].chain.tiers
        }

        def gate(tier: Tier, request: Request) -> None:
            if flags.any_off:
                for name in names[tier.name]:
                    if not flags.enabled(name):
                        raise TierFailed(f"switched off by flag {name}", "switched_off")
            if canary is not None:
                canary.skip(route, tier, request)

        return gate

    # -- faults -----------------------------------------------------------------------------

    async def list_faults(self, call: AdminCall) -> tuple[int, Any]:
        now = self.book.now()
        return 200, {"faults": [f.describe(now) for f in self.book.active()]}

    async def add_fault(self, call: AdminCall) -> tuple[int, Any]:
        if not self.faults_enabled:
            raise Conflict("fault injection is disabled in this gateway (control.faults: false)")
        spec = _parse_spec(call.json())
        pool = self.gateway.pools.get(spec.backend)
        if pool is None:
            known = ", ".join(sorted(self.gateway.pools))
            raise InvalidInput(f"unknown backend {spec.backend!r}; one of: {known}", "backend")
        labels = [r.label for r in pool.replicas]
        if spec.replica is not None and spec.replica not in labels:
            raise InvalidInput(
                f"backend {spec.backend!r} has no replica {spec.replica!r}; one of: "
                + ", ".join(labels),
                "replica",
            )
        longest = self.gateway.config.control.max_fault_duration
        if spec.duration > longest:
            raise InvalidInput(
                f"duration is over control.max_fault_duration ({longest:g}s)", "duration"
            )
        fault = self.book.add(spec)
        detail = fault.describe(self.book.now())
        self.gateway.audit("fault.add", detail, call.exchange.caller)
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
        self.gateway.audit(
            "fault.clear", {"cleared": cleared, "query": call.query}, call.exchange.caller
        )
        return 200, {"cleared": cleared}

    # -- flags ------------------------------------------------------------------------------

    def targets(self) -> list[str]:
        gw = self.gateway
        tiers = [
            str(FlagTarget.tier(r, t.name))
            for r, route in gw.routes.items()
            for t in route.chain.tiers
        ]
        return tiers + [str(FlagTarget.backend(b)) for b in gw.pools]

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
        self.gateway.audit("flag.set", detail, call.exchange.caller)
        return 200, detail


def _parse_spec(body: Any) -> FaultSpec:
    try:
        return FaultSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        where = f"{field}: " if field else ""
        raise InvalidInput(f"{where}{first['msg']}", field) from None


def install_control(gateway: Gateway) -> Control:
    """Build the gateway's control plane for faults and flags and hook it in."""
    control = Control(gateway)
    control.install()
    return control
