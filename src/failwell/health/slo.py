"""Per-route SLOs: count good and bad events per objective as requests finish (O(1), an
observer), and work out SLIs, burn rates and the error budget left off the request path.

Objectives (``routes.NAME.slo``):
- availability: answered by any tier;
- quality: answered by tier 1 or 2;
- latency: tier-1 answers within ``latency_p99`` (objective 99%);
- ttft: streamed answers whose first chunk came within ``ttft_p99``, whatever the tier
  (objective 99%);
- freshness: answers younger than ``max_stale_age`` (stale cache answers count their age),
  and, with ``freshness:``, answers whose declared features are within their bounds and tier-1
  answers from a model no older than ``max_model_age`` (health/freshness.py); objective 99%.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.observe import SloConfig
from failwell.contracts import Exchange
from failwell.observe import families
from failwell.observe.window import Windowed

if TYPE_CHECKING:
    from failwell.health.freshness import RouteFreshness


class Sli(enum.IntEnum):
    """Objectives; the values index pairs of (total, bad) slots in the counters."""

    AVAILABILITY = 0
    QUALITY = 1
    LATENCY = 2
    FRESHNESS = 3
    TTFT = 4


TIER1 = 10  # slot: answers by tier 1 (for the tier-1 floor)
SLOTS = 11
# Slots bumped per outcome: (availability total, bad), (quality total, bad), (latency total,
# bad), (freshness total, bad), (ttft total, bad), tier 1. A stale answer adds 7 (freshness
# bad); a stream adds 8 (ttft total), and 9 when its first chunk was late.
_FAILED = (0, 1, 2, 3)
_TIER1 = (0, 2, 4, 6, TIER1)
_TIER1_SLOW = (0, 2, 4, 5, 6, TIER1)
_TIER2 = (0, 2, 6)
_LOWER = (0, 2, 3, 6)
_P99 = 0.99


@dataclass(slots=True, frozen=True)
class BurnFigure:
    sli: Sli
    objective: float
    window: float
    events: int
    bad: int

    @property
    def ratio(self) -> float | None:
        """The SLI (share of good events), None without events."""
        return None if self.events == 0 else 1 - self.bad / self.events

    @property
    def burn_rate(self) -> float:
        return 0.0 if self.events == 0 else (self.bad / self.events) / (1 - self.objective)

    @property
    def budget_remaining(self) -> float:
        """Share of the error budget this window left (1.0: untouched; < 0: overspent)."""
        return 1.0 - self.burn_rate if self.events else 1.0


class RouteSlo:
    """Counters for one route's objectives, over sliding windows and since start."""

    def __init__(
        self,
        route: str,
        config: SloConfig,
        clock: Clock = SYSTEM_CLOCK,
        freshness: RouteFreshness | None = None,
    ) -> None:
        self.route = route
        self.freshness = freshness
        self.config = config
        self.clock = clock
        self.objectives: dict[Sli, float] = {}
        if config.availability is not None:
            self.objectives[Sli.AVAILABILITY] = config.availability
        if config.quality is not None:
            self.objectives[Sli.QUALITY] = config.quality
        if config.latency_p99 is not None:
            self.objectives[Sli.LATENCY] = _P99
        if config.max_stale_age is not None or freshness is not None:
            self.objectives[Sli.FRESHNESS] = _P99
        if config.ttft_p99 is not None:
            self.objectives[Sli.TTFT] = _P99
        shortest = min(w.short for w in config.windows)
        self.span = max(w.long for w in config.windows)
        self.counts = Windowed(shortest / 10, self.span, SLOTS)
        self._slow = config.latency_p99 if config.latency_p99 is not None else float("inf")
        self._stale = config.max_stale_age if config.max_stale_age is not None else float("inf")
        self._late = config.ttft_p99 if config.ttft_p99 is not None else float("inf")

    def record(self, ex: Exchange) -> None:
        """Count one finished request (caller errors, 4xx, are not the service's fault)."""
        if 400 <= ex.status < 500:
            return
        answer = ex.answer
        slots: tuple[int, ...]
        if answer is None:
            slots = _FAILED
        else:
            if answer.tier_index == 0:
                slots = _TIER1_SLOW if answer.latency > self._slow else _TIER1
            else:
                slots = _TIER2 if answer.tier_index == 1 else _LOWER
            if (answer.age is not None and answer.age > self._stale) or (
                self.freshness is not None and self.freshness.stale(ex)
            ):
                slots = (*slots, 7)
            if answer.tiers is not None:  # a stream: its latency is its time to first token
                slots = (*slots, 8, 9) if answer.latency > self._late else (*slots, 8)
        row = self.counts.row(self.clock.now())
        for slot in slots:
            row[slot] += 1

    def totals(self, window: float) -> list[int]:
        """This process's counts per slot over the last ``window`` seconds."""
        return self.counts.totals(self.clock.now(), window)

    def figure(self, sli: Sli, window: float) -> BurnFigure:
        return self.figure_of(self.totals(window), sli, window)

    def figure_of(self, totals: list[int], sli: Sli, window: float) -> BurnFigure:
        """The figure of ``sli`` from counts per slot (this process's or the fleet's)."""
        return BurnFigure(sli, self.objectives[sli], window, totals[2 * sli], totals[2 * sli + 1])

    @property
    def windows(self) -> list[float]:
        """Every window the burn rules read (their short and long windows), shortest first."""
        return sorted({w for bw in self.config.windows for w in (bw.short, bw.long)})

    @property
    def width(self) -> float:
        """Seconds per bucket of the counts."""
        return self.counts.width

    @property
    def cumulative(self) -> list[int]:
        """Counts per slot since start (what the fleet's view adds up)."""
        return self.counts.cumulative

    def tier1_share(self, window: float) -> tuple[int, float | None]:
        return tier1_share_of(self.totals(window))

    def budget_remaining(self, sli: Sli) -> float:
        """Share of the error budget left over the longest window (1.0: untouched; < 0:
        overspent)."""
        return self.figure(sli, self.span).budget_remaining


def tier1_share_of(totals: list[int]) -> tuple[int, float | None]:
    """(requests counted, the share of them tier 1 answered) from counts per slot."""
    return totals[2], (None if totals[2] == 0 else totals[TIER1] / totals[2])


class SloTracker:
    """All routes' SLO counters; an observer of finished exchanges."""

    def __init__(self, routes: dict[str, RouteSlo] | None = None) -> None:
        self.routes = routes or {}

    def bind(self, routes: dict[str, RouteSlo]) -> None:
        """Track ``routes``; a route whose SLO config is unchanged keeps its windows."""
        old = self.routes
        self.routes = {
            name: old[name] if name in old and old[name].config == slo.config else slo
            for name, slo in routes.items()
        }

    def __call__(self, ex: Exchange) -> None:
        if ex.route is None:
            return
        slo = self.routes.get(ex.route)
        if slo is not None:
            slo.record(ex)


class SloEventsCollector(Collector):
    """``failwell_slo_events_total{route,slo,kind}``: events and bad events since start, read at
    scrape time so the request path only bumps a list entry. The shipped Prometheus rules
    compute burn rates from it."""

    def __init__(self, tracker: SloTracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        f = families.SLO_REQUESTS
        requests = CounterMetricFamily(f.name, f.help, labels=f.labels)
        f = families.TIER1_ANSWERS
        tier1 = CounterMetricFamily(f.name, f.help, labels=f.labels)
        f = families.SLO_TIER1_FLOOR
        floor = GaugeMetricFamily(f.name, f.help, labels=f.labels)
        for name, slo in self.tracker.routes.items():
            requests.add_metric([name], slo.counts.cumulative[2])
            tier1.add_metric([name], slo.counts.cumulative[TIER1])
            if slo.config.tier1_floor is not None:
                floor.add_metric([name], slo.config.tier1_floor)
        yield requests
        yield tier1
        yield floor
        f = families.SLO_EVENTS
        family = CounterMetricFamily(f.name, f.help, labels=f.labels)
        for name, slo in self.tracker.routes.items():
            for sli in slo.objectives:
                label = sli.name.lower()
                family.add_metric([name, label, "total"], slo.counts.cumulative[2 * sli])
                family.add_metric([name, label, "bad"], slo.counts.cumulative[2 * sli + 1])
        yield family
