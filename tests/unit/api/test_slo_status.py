"""The SLO figures of the status pages: the fleet's counts when they can be read, each
process's own beside them, and this process's labelled as the fallback when they cannot."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from failwell.api.status import FLEET_WAIT, slo_status
from failwell.config.observe import BurnWindow, SloConfig
from failwell.health.alerts import Counts
from failwell.health.slo import SLOTS, RouteSlo, SloTracker
from failwell.testing import FakeClock

WINDOWS = (BurnWindow(long=60.0, short=10.0, burn_rate=2.0),)


class Fleet:
    """The fleet's counts as a status page reads them: ``read`` (None: unreachable)."""

    instance = "gw-1"

    def __init__(self, read: tuple[float, Counts] | None) -> None:
        self.read = read
        self.asked: list[tuple[dict[str, list[float]], float]] = []

    async def windows(self, wanted: Mapping[str, Sequence[float]]) -> Counts | None:
        raise AssertionError("a status page reads recent counts only")

    async def recent(
        self, wanted: Mapping[str, Sequence[float]], timeout: float
    ) -> tuple[float, Counts] | None:
        self.asked.append(({k: list(v) for k, v in wanted.items()}, timeout))
        return self.read


def tracker(clock: FakeClock) -> SloTracker:
    slo = RouteSlo("r", SloConfig(availability=0.9, windows=WINDOWS), clock)
    for _ in range(3):
        slo.counts.add(clock.now(), 0)  # three answered
    slo.counts.add(clock.now(), 0)
    slo.counts.add(clock.now(), 1)  # one failed
    return SloTracker({"r": slo})


def counts(events: int, bad: int) -> list[int]:
    out = [0] * SLOTS
    out[0], out[1] = events, bad
    return out


def show(fleet: Fleet | None) -> tuple[dict[str, Any], dict[str, Any]]:
    clock = FakeClock(1000.0)
    routes: dict[str, dict[str, Any]] = {"r": {}}
    view = asyncio.run(slo_status(tracker(clock), fleet, routes))
    return view, routes["r"]


def test_without_a_fleet_the_figures_are_this_processs() -> None:
    view, route = show(None)
    assert view == {"fleet": False, "scope": "local"}
    assert route["slo_scope"] == "local" and "slo_local" not in route
    figure = route["slo"]["availability"]
    assert (figure["events"], figure["bad"], figure["sli"]) == (4, 1, 0.75)
    assert figure["window_s"] == 10.0 and figure["burn_rate"] == 2.5


def test_the_fleets_figures_are_shown_with_this_processs_beside_them() -> None:
    fleet = Fleet((999.5, {"r": {10.0: counts(40, 2), 60.0: counts(100, 5)}}))
    view, route = show(fleet)
    assert fleet.asked == [({"r": [10.0, 60.0]}, FLEET_WAIT)]
    assert view["fleet"] is True and view["scope"] == "fleet"
    assert view["instance"] == "gw-1" and view["read_at"] == 999.5
    assert route["slo_scope"] == "fleet"
    shown = route["slo"]["availability"]
    assert (shown["events"], shown["bad"], shown["burn_rate"]) == (40, 2, 0.5)
    assert shown["budget_remaining"] == 0.5  # 5 bad of 100 over the longest window
    mine = route["slo_local"]["availability"]
    assert (mine["events"], mine["bad"]) == (4, 1)


def test_unreachable_fleet_counts_fall_back_to_this_processs_labelled() -> None:
    view, route = show(Fleet(None))
    assert view["scope"] == "local_fallback" and view["unavailable"]
    assert "read_at" not in view
    assert route["slo_scope"] == "local_fallback"
    assert route["slo"] == route["slo_local"]
    assert route["slo"]["availability"]["events"] == 4


def test_a_route_the_fleet_has_no_counts_for_is_labelled_on_its_own() -> None:
    clock = FakeClock(1000.0)
    both = tracker(clock)
    both.routes["s"] = RouteSlo("s", SloConfig(availability=0.9, windows=WINDOWS), clock)
    fleet = Fleet((1000.0, {"r": {10.0: counts(1, 0), 60.0: counts(1, 0)}}))
    routes: dict[str, dict[str, Any]] = {"r": {}, "s": {}}
    view = asyncio.run(slo_status(both, fleet, routes))
    assert view["scope"] == "mixed"
    assert routes["r"]["slo_scope"] == "fleet" and routes["s"]["slo_scope"] == "local_fallback"
