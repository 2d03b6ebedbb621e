"""GET /admin/status: routes, tiers, pools, replicas and breaker states as JSON."""

from __future__ import annotations

from typing import Any

from failwell.api.admin import AdminCall
from failwell.routing.assemble import Gateway
from failwell.routing.tiers import ModelTier


def status(gateway: Gateway) -> dict[str, Any]:
    routes = {}
    for name, route in gateway.routes.items():
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
                    "outstanding": r.outstanding,
                }
                for r in pool.replicas
            ]
        }
        for name, pool in gateway.pools.items()
    }
    return {"routes": routes, "backends": backends}


def register_status(gateway: Gateway) -> None:
    async def handler(call: AdminCall) -> tuple[int, Any]:
        return 200, status(gateway)

    gateway.admin.add("GET", "/admin/status", handler)
