"""``GET /admin/slo``: each route's objectives over each burn window, as this process counted
them (``local``) and as the whole fleet did (``fleet``: every process's counts added up in
Redis; null without a fleet or while Redis is unreachable). ``?route=NAME`` narrows it."""

from __future__ import annotations

from typing import Any

from failwell.contracts import AdminCall, AdminRoute
from failwell.health.alerts import FleetCounts
from failwell.health.slo import BurnFigure, SloTracker


def _figure(figure: BurnFigure) -> dict[str, Any]:
    return {
        "events": figure.events,
        "bad": figure.bad,
        "sli": figure.ratio,
        "burn_rate": round(figure.burn_rate, 4),
    }


def slo_admin_routes(tracker: SloTracker, fleet: FleetCounts | None) -> list[AdminRoute]:
    async def handler(call: AdminCall) -> tuple[int, Any]:
        wanted = call.query.get("route", [None])[0]
        shown = {n: s for n, s in tracker.routes.items() if wanted in (None, n)}
        counts = await fleet.windows({n: s.windows for n, s in shown.items()}) if fleet else None
        routes: dict[str, Any] = {}
        for name, slo in shown.items():
            shared = (counts or {}).get(name, {})
            routes[name] = {
                sli.name.lower(): {
                    "objective": objective,
                    "windows": {
                        str(w): {
                            "local": _figure(slo.figure_of(slo.totals(w), sli, w)),
                            "fleet": None
                            if (totals := shared.get(w)) is None
                            else _figure(slo.figure_of(totals, sli, w)),
                        }
                        for w in slo.windows
                    },
                }
                for sli, objective in slo.objectives.items()
            }
        return 200, {"fleet": fleet is not None, "routes": routes}

    return [AdminRoute("GET", "/admin/slo", handler)]
