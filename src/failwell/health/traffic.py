"""Recent traffic per route for the dashboard and ``failwell status``: answers per tier, a
latency histogram and (for streams) a time-to-first-token histogram in 2-second buckets over
the last 10 minutes. Recording is O(1): a few increments and a bisect over the bucket
bounds."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.contracts import Exchange
from failwell.observe.families import LATENCY_BUCKETS
from failwell.observe.window import Windowed
from failwell.routing.route import Route

WIDTH = 2.0
SPAN = 600.0


def _ms(seconds: float | None) -> float | None:
    """Milliseconds of a bucket bound (None for no data, and for the open top bucket)."""
    if seconds is None or seconds == float("inf"):
        return None
    return seconds * 1000


class RouteTraffic:
    def __init__(self, route: Route, clock: Clock) -> None:
        self.tiers = [t.name for t in route.chain.tiers]
        self.failed = len(self.tiers)  # slot of requests no tier answered
        self.first_latency = self.failed + 1
        self.first_ttft = self.first_latency + len(LATENCY_BUCKETS) + 1
        self.counts = Windowed(WIDTH, SPAN, self.first_ttft + len(LATENCY_BUCKETS) + 1)
        self.clock = clock

    def record(self, ex: Exchange) -> None:
        if 400 <= ex.status < 500:
            return
        now = self.clock.now()
        answer = ex.answer
        if answer is None:
            self.counts.add(now, self.failed)
            return
        row = self.counts.row(now)
        row[answer.tier_index] += 1
        bucket = bisect_left(LATENCY_BUCKETS, answer.latency)
        row[self.first_latency + bucket] += 1
        if answer.tiers is not None:  # a stream: its latency is its time to first token
            row[self.first_ttft + bucket] += 1

    def percentile(self, counts: list[int], q: float, ttft: bool = False) -> float | None:
        """Upper bound of the latency (or TTFT) bucket holding quantile ``q`` (seconds)."""
        start = self.first_ttft if ttft else self.first_latency
        hist = counts[start : start + len(LATENCY_BUCKETS) + 1]
        total = sum(hist)
        if total == 0:
            return None
        rank, seen = q * total, 0
        for i, n in enumerate(hist):
            seen += n
            if seen >= rank:
                return LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else float("inf")
        return None

    def snapshot(self, window: float, points: int) -> dict[str, Any]:
        now = self.clock.now()
        wall_offset = SYSTEM_CLOCK.wall() - now
        totals = self.counts.totals(now, window)
        series = self.counts.series(now, points)
        p50, p99 = self.percentile(totals, 0.5), self.percentile(totals, 0.99)
        return {
            "tiers": self.tiers,
            "window_s": window,
            "by_tier": dict(zip([*self.tiers, "failed"], totals[: self.failed + 1], strict=True)),
            "latency_ms": {"p50": _ms(p50), "p99": _ms(p99)},
            "ttft_ms": {
                "p50": _ms(self.percentile(totals, 0.5, ttft=True)),
                "p99": _ms(self.percentile(totals, 0.99, ttft=True)),
            },
            "series": [
                {
                    "t": round(t + wall_offset, 3),
                    "by_tier": row[: self.failed + 1],
                    "p99_ms": _ms(self.percentile(row, 0.99)),
                }
                for t, row in series
            ],
            "width_s": WIDTH,
        }


class Traffic:
    """Observer keeping RouteTraffic for every route."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.routes: dict[str, RouteTraffic] = {}

    def bind(self, routes: Mapping[str, Route]) -> None:
        """Keep the history of routes whose tiers are the same; start the others afresh."""
        old = self.routes
        fresh = {}
        for name, route in routes.items():
            kept = old.get(name)
            same = kept is not None and kept.tiers == [t.name for t in route.chain.tiers]
            fresh[name] = kept if same and kept is not None else RouteTraffic(route, self.clock)
        self.routes = fresh

    def __call__(self, ex: Exchange) -> None:
        if ex.route is None:
            return
        traffic = self.routes.get(ex.route)
        if traffic is not None:
            traffic.record(ex)
