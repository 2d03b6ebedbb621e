"""GET /admin/status: routes, tiers, pools, replicas and breaker states as JSON; and the
richer feed behind the dashboard and ``failwell status`` (traffic, canaries, SLOs, alerts)."""

from __future__ import annotations

import time
from typing import Any

from failwell.api.health import readiness
from failwell.api.host import Host
from failwell.contracts import AdminCall, AdminRoute
from failwell.routing.tiers import ModelTier


def status(host: Host) -> dict[str, Any]:
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
    return {"routes": routes, "backends": backends}


def status_routes(host: Host) -> list[AdminRoute]:
    async def handler(call: AdminCall) -> tuple[int, Any]:
        return 200, status(host)

    return [AdminRoute("GET", "/admin/status", handler)]


def feed(host: Host, window: float = 300.0) -> dict[str, Any]:
    """Everything the dashboard and ``failwell status`` show, in one JSON document."""
    plane = host.health
    doc = status(host)
    points = int(window / 2)
    for name, traffic in plane.traffic.routes.items():
        route = doc["routes"][name]
        route["traffic"] = traffic.snapshot(window, points)
        canary = plane.canaries.latest.get(name)
        route["canary"] = canary.as_json() if canary is not None else None
        slo = plane.slo.routes[name]
        shortest = min(w.short for w in slo.config.windows)
        route["slo"] = {
            sli.name.lower(): {
                "objective": objective,
                "sli": slo.figure(sli, shortest).ratio,
                "window_s": shortest,
                "burn_rate": round(slo.figure(sli, shortest).burn_rate, 4),
                "budget_remaining": round(slo.budget_remaining(sli), 4),
            }
            for sli, objective in slo.objectives.items()
        }
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
