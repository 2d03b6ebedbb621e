"""SLO counting over sliding windows, burn rates, and alerts that notify on change only."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from failwell.config.observe import AlertsConfig, BurnWindow, SloConfig
from failwell.contracts import Answer, Exchange
from failwell.health.alerts import SloEvaluator
from failwell.health.slo import RouteSlo, Sli, SloTracker
from failwell.observe.window import Windowed
from failwell.testing import FakeClock

WINDOWS = (BurnWindow(long=60.0, short=10.0, burn_rate=2.0),)


def exchange(tier: int | None, latency: float = 0.01, age: float | None = None) -> Exchange:
    ex = Exchange("id", {}, "/v1/predict/r", route="r", status=200 if tier is not None else 503)
    if tier is not None:
        ex.answer = Answer({}, f"t{tier}", "q", "b", None, latency, tier, age=age)
    return ex


def test_windowed_counts_expire_and_series_are_ordered() -> None:
    w = Windowed(1.0, 10.0, 2)
    for t in range(5):
        w.add(100.0 + t, 0)
    w.add(104.5, 1, 3)
    assert w.totals(104.9, 2.0) == [2, 3]
    assert w.totals(104.9, 10.0) == [5, 3]
    assert w.totals(120.0, 10.0) == [0, 0]  # all expired
    w.add(120.0, 0)  # reuses a ring slot: the old count is gone
    assert w.totals(120.0, 10.0) == [1, 0]
    series = w.series(120.0, 3)
    assert [t for t, _ in series] == [118.0, 119.0, 120.0]
    assert series[-1][1] == [1, 0]


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        # short gaps, and quiet spells longer than the span (a ring mostly empty)
        st.tuples(st.one_of(st.floats(0, 7.5), st.floats(7.5, 40.0)), st.integers(0, 2)),
        min_size=1,
        max_size=60,
    ),
    window=st.floats(0.5, 12.0),
)
def test_windowed_matches_a_plain_event_list(steps: list[tuple[float, int]], window: float) -> None:
    w = Windowed(1.0, 10.0, 3)
    now, events = 50.0, []
    for gap, slot in steps:
        now += gap
        w.add(now, slot)
        events.append((int(now), slot))
        newest = int(now)
        buckets = min(w.n - 2, max(1, -(-window // 1)))
        expected = [0, 0, 0]
        for epoch, s in events:
            if newest - buckets < epoch <= newest:
                expected[s] += 1
        assert w.totals(now, window) == expected
        assert sum(c[0] + c[1] + c[2] for _, c in w.series(now, 10)) == sum(
            1 for epoch, _ in events if epoch > newest - 10
        )
    assert sum(w.cumulative) == len(events)


def test_slis_and_burn_rates() -> None:
    clock = FakeClock()
    slo = RouteSlo(
        "r",
        SloConfig(
            availability=0.99, quality=0.9, latency_p99=0.1, max_stale_age=60, windows=WINDOWS
        ),
        clock,
    )
    for _ in range(90):
        slo.record(exchange(0))
    for _ in range(5):
        slo.record(exchange(0, latency=0.5))  # slow tier-1 answer
    for _ in range(3):
        slo.record(exchange(3, age=600))  # stale cache answer
    for _ in range(2):
        slo.record(exchange(None))  # no tier answered
    bad_input = exchange(None)
    bad_input.status = 422
    slo.record(bad_input)  # caller errors do not count
    avail = slo.figure(Sli.AVAILABILITY, 10)
    assert (avail.events, avail.bad) == (100, 2)
    assert abs(avail.burn_rate - 2.0) < 1e-9  # 2% errors against a 1% budget
    quality = slo.figure(Sli.QUALITY, 10)
    assert (quality.events, quality.bad) == (100, 5)
    latency = slo.figure(Sli.LATENCY, 10)
    assert (latency.events, latency.bad) == (95, 5)
    fresh = slo.figure(Sli.FRESHNESS, 10)
    assert (fresh.events, fresh.bad) == (98, 3)
    assert slo.tier1_share(10) == (100, 0.95)
    assert abs(slo.budget_remaining(Sli.QUALITY) - 0.5) < 1e-9
    clock.advance(100)  # everything left the windows
    assert slo.figure(Sli.AVAILABILITY, 60).events == 0


def evaluator(clock: FakeClock, **slo: Any) -> tuple[SloEvaluator, RouteSlo]:
    route = RouteSlo("r", SloConfig(windows=WINDOWS, **slo), clock)
    config = AlertsConfig(repeat_after=300)
    return SloEvaluator(SloTracker({"r": route}), config, CollectorRegistry(), clock), route


def test_alert_fires_once_while_burning_then_resolves_and_reminds() -> None:
    clock = FakeClock()
    ev, route = evaluator(clock, availability=0.99, tier1_floor=0.5)
    for _ in range(20):
        route.record(exchange(0))
    assert ev.evaluate() == []
    sent = []
    for _ in range(10):  # burning for 10 evaluations: one notification per alert
        for _ in range(10):
            route.record(exchange(None))
        clock.advance(1)
        sent += ev.evaluate()
    names = sorted((e["alert"], e["state"]) for e in sent)
    assert names == [("failwell_availability_burn", "firing"), ("failwell_tier1_floor", "firing")]
    assert {a["slo"] for a in ev.firing()} == {"availability", "tier1_floor"}
    clock.advance(301)  # still burning after repeat_after: one reminder each
    for _ in range(10):
        route.record(exchange(None))
    assert len(ev.evaluate()) == 2
    for _ in range(200):  # recovered: the short window clears first, the alert resolves
        route.record(exchange(0))
    clock.advance(11)
    for _ in range(200):
        route.record(exchange(0))
    states = {(e["slo"], e["state"]) for e in ev.evaluate()}
    assert states == {("availability", "resolved"), ("tier1_floor", "resolved")}
    assert ev.firing() == []
    assert ev.evaluate() == []


def test_no_traffic_no_alert() -> None:
    clock = FakeClock()
    ev, _ = evaluator(clock, availability=0.999, tier1_floor=0.9)
    clock.advance(100)
    assert ev.evaluate() == []


def test_the_ttft_objective_counts_streams_by_their_first_chunk() -> None:
    clock = FakeClock(1000.0)
    slo = RouteSlo("r", SloConfig(ttft_p99=0.5, windows=WINDOWS), clock)
    assert Sli.TTFT in slo.objectives
    for tier, latency in [(0, 0.1), (1, 0.9), (0, 0.6), (0, 0.2)]:
        ex = exchange(tier, latency)
        assert ex.answer is not None
        ex.answer.tiers = [ex.answer.tier]  # a stream
        slo.record(ex)
    slo.record(exchange(0, 2.0))  # not a stream: no TTFT event
    figure = slo.figure(Sli.TTFT, 60.0)
    assert (figure.events, figure.bad) == (4, 2)
    assert slo.tier1_share(60.0) == (5, 0.8)
