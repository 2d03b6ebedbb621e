"""Health endpoints: /health/live (the loop answers), /health/ready (should get traffic) and
/health/inference (the latest canary verdict per route; never reaches a model itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from failwell.config.models import TierKind
from failwell.contracts import ReadinessCheck
from failwell.health.canary import CanaryRunner
from failwell.routing.route import Route
from failwell.routing.tiers import ModelTier
from failwell.store.cache import AnswerCache


def readiness(
    routes: Mapping[str, Route], cache: AnswerCache, extras: Sequence[ReadinessCheck]
) -> tuple[bool, dict[str, Any]]:
    """Ready when the config is loaded, every route has a usable tier 1 (or its SLO policy
    accepts answering from later tiers only, and one of them is ready) and the stores answer."""
    checks: dict[str, Any] = {"config": {"ok": True, "routes": len(routes)}}
    for name, route in routes.items():
        first = route.chain.tiers[0]
        if first.kind is TierKind.MODEL and isinstance(first, ModelTier):
            pool = first.pool
            usable = [r.label for r in pool.replicas if r.available()]
            check: dict[str, Any] = {
                "ok": bool(usable),
                "tier": first.name,
                "backend": pool.backend,
                "available_replicas": usable,
            }
            if not usable:
                later = [t.name for t in route.chain.tiers[1:] if t.ready()]
                if route.config.slo.fallback_only_ready and later:
                    check.update(ok=True, fallback_only=True, answering_tiers=later)
                else:
                    check["error"] = f"tier 1 ({first.name}) has no usable replica"
            checks[f"route:{name}"] = check
        else:
            checks[f"route:{name}"] = {"ok": True, "tier": first.name}
    try:
        cache.ping()
        checks["cache"] = {"ok": True}
    except Exception as exc:  # any store failure makes the gateway unready
        checks["cache"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    for extra in extras:
        checks.update(extra())
    ok = all(c["ok"] for c in checks.values())
    return ok, {"status": "ready" if ok else "not_ready", "checks": checks}


def inference_health(canaries: CanaryRunner) -> tuple[bool, dict[str, Any]]:
    """The latest canary result per route; 503 when any route is unhealthy (a route whose
    canary has not run yet reports ``pending``)."""
    routes: dict[str, Any] = {}
    for route, _tier, cfg, _inputs in canaries.routes:
        result = canaries.latest.get(route.name)
        routes[route.name] = (
            result.as_json()
            if result is not None
            else {"status": "pending", "interval_s": cfg.interval}
        )
    ok = all(r["status"] != "unhealthy" for r in routes.values())
    worst = {r["status"] for r in routes.values()}
    status = next((s for s in ("unhealthy", "degraded", "pending") if s in worst), "healthy")
    return ok, {"status": status, "routes": routes}
