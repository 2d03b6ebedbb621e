"""``GET /admin/slo``: each route's objectives over each burn window, as this process counted
them (``local``) and as the whole fleet did (``fleet``: every process's counts added up in
Redis; null without a fleet or while Redis is unreachable). ``?route=NAME`` narrows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failwell.contracts import AdminCall, AdminRoute
from failwell.health.slo import BurnFigure, SloTracker

if TYPE_CHECKING:  # a fleet's module loads redis: only for a gateway with a fleet
    from failwell.fleet.slo import FleetSlo


def _figure(figure: BurnFigure) -> dict[str, Any]:
    return {
        "events": figure.events,
        "bad": figure.bad,
        "sli": figure.ratio,
        "burn_rate": round(figure.burn_rate, 4),
    }


def slo_admin_routes(tracker: SloTracker, fleet: FleetSlo | None) -> list[AdminRoute]:
    async def handler(call: AdminCall) -> tuple[int, Any]:
        wanted = call.query.get("route", [None])[0]
        routes: dict[str, Any] = {}
        for name, slo in tracker.routes.items():
            if wanted not in (None, name):
                continue
            windows = sorted({w for bw in slo.config.windows for w in (bw.short, bw.long)})
            shared = {w: await fleet.totals(name, w) if fleet else None for w in windows}
            now = slo.clock.now()
            routes[name] = {
                sli.name.lower(): {
                    "objective": objective,
                    "windows": {
                        str(w): {
                            "local": _figure(slo.figure_of(slo.counts.totals(now, w), sli, w)),
                            "fleet": None
                            if (totals := shared[w]) is None
                            else _figure(slo.figure_of(totals, sli, w)),
                        }
                        for w in windows
                    },
                }
                for sli, objective in slo.objectives.items()
            }
        return 200, {"fleet": fleet is not None, "routes": routes}

    return [AdminRoute("GET", "/admin/slo", handler)]
