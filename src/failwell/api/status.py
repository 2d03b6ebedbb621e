"""GET /admin/status: routes, tiers, SLO figures, pools, replicas and breaker states as JSON;
and the richer feed behind the dashboard and ``failwell status`` (traffic, canaries, alerts).

SLO figures (each route's ``slo``: the shortest burn window's SLI and burn rate, the longest
window's budget left) are the fleet's when the gateway is in one: the counts of every process
added up in Redis, the ones the SLO alerts judge (``fleet/slo.py``), read lately or within
``FLEET_WAIT``. ``slo_local`` beside them holds this process's own; ``slo_scope`` says which
``slo`` holds: ``fleet``, ``local`` (no fleet) or ``local_fallback`` (the fleet's counts are
unreachable: this process's, standing in); ``slo_view`` says when the fleet's were read."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from failwell.api.health import readiness
from failwell.api.host import Host
from failwell.contracts import AdminCall, AdminRoute
from failwell.health.alerts import FleetCounts
from failwell.health.slo import RouteSlo, SloTracker
from failwell.routing.tiers import ModelTier

FLEET_WAIT = 0.25  # the longest a status request waits for the fleet's counts


def slo_figures(slo: RouteSlo, totals: Callable[[float], list[int]]) -> dict[str, Any]:
    """Each objective's figures from counts per slot over a window (``totals``: this
    process's or the fleet's)."""
    shortest = min(w.short for w in slo.config.windows)
    out = {}
    for sli, objective in slo.objectives.items():
        now = slo.figure_of(totals(shortest), sli, shortest)
        out[sli.name.lower()] = {
            "objective": objective,
            "sli": now.ratio,
            "window_s": shortest,
            "events": now.events,
            "bad": now.bad,
            "burn_rate": round(now.burn_rate, 4),
            "budget_remaining": round(
                slo.figure_of(totals(slo.span), sli, slo.span).budget_remaining, 4
            ),
        }
    return out


async def slo_status(
    tracker: SloTracker, fleet: FleetCounts | None, routes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Put each route's SLO figures in ``routes`` (see the module's docstring); return the
    ``slo_view``."""
    read = None
    view: dict[str, Any] = {"fleet": fleet is not None}
    if fleet is not None:
        wanted = {
            name: [min(w.short for w in slo.config.windows), slo.span]
            for name, slo in tracker.routes.items()
        }
        read = await fleet.recent(wanted, FLEET_WAIT)
        view["instance"] = fleet.instance
        if read is None:
            view["unavailable"] = "the fleet's Redis is unreachable"
        else:
            view["read_at"] = read[0]
            view["age_s"] = round(max(0.0, time.time() - read[0]), 3)
    for name, slo in tracker.routes.items():
        route = routes.get(name)
        if route is None:
            continue
        local = slo_figures(slo, slo.totals)
        shared = None if read is None else read[1].get(name)
        if fleet is None:
            route["slo"], route["slo_scope"] = local, "local"
        elif shared is None:
            route["slo"], route["slo_scope"], route["slo_local"] = local, "local_fallback", local
        else:
            route["slo"], route["slo_scope"] = slo_figures(slo, shared.__getitem__), "fleet"
            route["slo_local"] = local
    scopes = {r["slo_scope"] for r in routes.values() if "slo_scope" in r}
    view["scope"] = scopes.pop() if len(scopes) == 1 else "mixed" if scopes else "local"
    return view


async def status(host: Host) -> dict[str, Any]:
    routes = {}
    for name, route in host.routes.items():
        routes[name] = {
            "kind": route.kind.value,
            "deadline_ms": round(route.deadline * 1000, 3),
            "tiers": [
                {
                    "name": t.name,
                    "kind": t.kind.value,
                    "quality": t.quality,
                    **({"backend": t.pool.backend} if isinstance(t, ModelTier) else {}),
                }
                for t in route.chain.tiers
            ],
        }
    backends = {
        name: {
            "replicas": [
                {
                    "name": r.label,
                    "zone": r.zone,
                    "priority": r.priority,
                    "breaker": r.breaker.state.name.lower(),
                    "healthy": r.healthy,
                    "serving": r.serving(),
                    "outstanding": r.outstanding,
                }
                for r in pool.replicas
            ]
        }
        for name, pool in host.pools.items()
    }
    for name, managed in host.supervisor.status().items():
        backends[name]["managed"] = managed
    view = await slo_status(host.health.slo, host.health.evaluator.fleet, routes)
    return {"routes": routes, "slo_view": view, "backends": backends}


def status_routes(host: Host) -> list[AdminRoute]:
    async def handler(call: AdminCall) -> tuple[int, Any]:
        return 200, await status(host)

    return [AdminRoute("GET", "/admin/status", handler)]


async def feed(host: Host, window: float = 300.0) -> dict[str, Any]:
    """Everything the dashboard and ``failwell status`` show, in one JSON document."""
    plane = host.health
    doc = await status(host)
    points = int(window / 2)
    for name, traffic in plane.traffic.routes.items():
        route = doc["routes"][name]
        route["traffic"] = traffic.snapshot(window, points)
        canary = plane.canaries.latest.get(name)
        route["canary"] = canary.as_json() if canary is not None else None
    for backend in doc["backends"].values():
        for replica in backend["replicas"]:
            replica["health"] = None
    for (backend, label), health in plane.board.replicas.items():
        for replica in doc["backends"][backend]["replicas"]:
            if replica["name"] == label:
                replica["health"] = {
                    "live": health.live,
                    "canary": health.canary,
                    "last_error": health.last_error,
                }
    ready, detail = readiness(host.routes, host.cache, host.readiness_checks)
    doc["ready"] = ready
    doc["readiness"] = detail["status"]  # ready, degraded or not_ready
    doc["alerts"] = {
        "firing": plane.evaluator.firing()
        + [
            {"alert": "failwell_replica_crash_loop", "backend": name, "severity": "page"}
            for name, b in host.supervisor.backends.items()
            if b.quarantined
        ],
        "recent": list(plane.evaluator.recent)[:20],
    }
    doc["retrain"] = host.retrain.status()
    doc["time"] = time.time()
    return doc
