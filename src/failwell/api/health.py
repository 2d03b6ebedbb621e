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
    routes: Mapping[str, Route],
    cache: AnswerCache,
    extras: Sequence[ReadinessCheck],
    tier1: bool = False,
) -> tuple[bool, dict[str, Any]]:
    """Ready when the config is loaded, every route can answer and the stores answer.

    A route whose tier 1 has no replica in rotation still answers from its later tiers: it is
    ready (and listed as degraded) unless its ``slo.fallback_only_ready`` is false, so a load
    balancer keeps sending traffic to a gateway that gives fallback answers. ``tier1`` asks
    more, for a global balancer choosing a region: every route's tier 1 in rotation."""
    checks: dict[str, Any] = {"config": {"ok": True, "routes": len(routes)}}
    degraded = []
    for name, route in routes.items():
        first = route.chain.tiers[0]
        if first.kind is TierKind.MODEL and isinstance(first, ModelTier):
            pool = first.pool
            usable = [r.label for r in pool.replicas if r.serving()]
            check: dict[str, Any] = {
                "ok": bool(usable),
                "tier": first.name,
                "backend": pool.backend,
                "available_replicas": usable,
            }
            if not usable:
                later = [t.name for t in route.chain.tiers[1:] if t.ready()]
                check["error"] = f"tier 1 ({first.name}) has no replica in rotation"
                if later:
                    degraded.append(name)
                    check.update(degraded=True, answering_tiers=later)
                    if route.config.slo.fallback_only_ready and not tier1:
                        check.update(ok=True, fallback_only=True)
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
    status = ("degraded" if degraded else "ready") if ok else "not_ready"
    return ok, {"status": status, "degraded_routes": degraded, "checks": checks}


def inference_health(
    canaries: CanaryRunner, routes: Mapping[str, Route]
) -> tuple[bool, dict[str, Any]]:
    """The latest canary result per route; 503 when any route is unhealthy. A route whose
    canary has not run yet reports ``pending``; a route without a canary ``unknown`` (nothing
    checked it), and so does the whole answer when no route has one: never ``healthy``."""
    found: dict[str, Any] = {}
    for route, _tier, cfg, _inputs in canaries.routes:
        result = canaries.latest.get(route.name)
        found[route.name] = (
            result.as_json()
            if result is not None
            else {"status": "pending", "interval_s": cfg.interval}
        )
    ok = all(r["status"] != "unhealthy" for r in found.values())
    worst = {r["status"] for r in found.values()}
    status = next((s for s in ("unhealthy", "degraded", "pending") if s in worst), "healthy")
    if not found:
        status = "unknown"
    for name in routes:
        found.setdefault(
            name, {"status": "unknown", "reason": f"no canary (routes.{name}.canary) configured"}
        )
    return ok, {"status": status, "routes": found}
