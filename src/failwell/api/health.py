"""Health endpoints: /health/live (the loop answers) and /health/ready (should get traffic)."""

from __future__ import annotations

from typing import Any

from failwell.config.models import TierKind
from failwell.routing.assemble import Gateway
from failwell.routing.tiers import ModelTier


def readiness(gateway: Gateway) -> tuple[bool, dict[str, Any]]:
    """Ready when every route has a usable tier 1 and the cache store answers."""
    checks: dict[str, Any] = {"config": {"ok": True}}
    for name, route in gateway.routes.items():
        first = route.chain.tiers[0]
        if first.kind is TierKind.MODEL and isinstance(first, ModelTier):
            pool = first.pool
            usable = [r.label for r in pool.replicas if r.available()]
            checks[f"route:{name}"] = {
                "ok": bool(usable),
                "tier": first.name,
                "backend": pool.backend,
                "available_replicas": usable,
            }
        else:
            checks[f"route:{name}"] = {"ok": True, "tier": first.name}
    try:
        gateway.cache.ping()
        checks["cache"] = {"ok": True}
    except Exception as exc:  # any store failure makes the gateway unready
        checks["cache"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    for extra in gateway.readiness_checks:
        checks.update(extra())
    ok = all(c["ok"] for c in checks.values())
    return ok, {"status": "ready" if ok else "not_ready", "checks": checks}
