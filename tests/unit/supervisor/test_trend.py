"""Trend-based scaling: the rate forecast by hand, and with hypothesis what must hold whatever
the rates do (bounds, cool-downs, a steady or falling load changes nothing, a ramp is met
earlier than by queue depth alone). A fake clock; no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failwell.config.managed import AutoscaleConfig, TrendConfig
from failwell.supervisor.autoscale import Autoscaler, Decision
from failwell.supervisor.trend import RateTrend
from failwell.testing.fakes import FakeClock
from tests.unit.supervisor.properties import assert_cool_downs_hold

SERVICE = 0.02  # seconds per request: in flight = rate * SERVICE (Little's law)
TREND = TrendConfig(enabled=True, horizon=5.0, window=8.0, min_rate=1.0)
POLICY = AutoscaleConfig(
    target_in_flight=1.0,
    tolerance=0.1,
    interval=1.0,
    up_window=2.0,
    down_window=10.0,
    up_cooldown=3.0,
    down_cooldown=10.0,
    trend=TREND,
)


def scale(
    rates: list[float], trend: bool = True, low: int = 2, high: int = 12
) -> list[tuple[float, int, Decision | None]]:
    """One measurement per second; in flight follows the rate; the count follows decisions."""
    clock = FakeClock()
    policy = POLICY.model_copy(update={"trend": TREND.model_copy(update={"enabled": trend})})
    scaler = Autoscaler(policy, low, high, clock)
    current, out = low, []
    for rate in rates:
        clock.advance(1.0)
        decision = scaler.decide(current, rate * SERVICE, None, rate)
        if decision is not None:
            current = decision.desired
        out.append((clock.now(), current, decision))
    return out


def test_the_forecast_of_a_straight_ramp_is_exact() -> None:
    trend = RateTrend(TREND)
    for t in range(10):
        trend.add(float(t), 10 + 5 * t)
    # The newest rate is at t=9 (55/s); 5 s later the line is at 80/s.
    assert trend.forecast() == pytest.approx(80.0)


def test_no_forecast_before_half_the_window_nor_below_min_rate() -> None:
    trend = RateTrend(TREND)
    for t in range(4):
        trend.add(float(t), 100.0 * t)
    assert trend.forecast() is None  # 3 s covered of an 8 s window
    trend.add(4.0, 400.0)
    assert trend.forecast() is not None
    quiet = RateTrend(TREND)
    for t in range(10):
        quiet.add(float(t), 0.5)
    assert quiet.forecast() is None


def test_old_rates_leave_the_window() -> None:
    trend = RateTrend(TREND)
    for t in range(10):
        trend.add(float(t), 1000.0)  # a burst, then a steady 50/s for longer than the window
    for t in range(10, 30):
        trend.add(float(t), 50.0)
    assert trend.forecast() == pytest.approx(50.0)


def test_a_ramp_is_met_earlier_with_the_trend_and_says_why() -> None:
    ramp = [10.0 + 10 * i for i in range(40)]  # 10 → 400 requests/s over 40 s
    with_trend = scale(ramp)
    without = scale(ramp, trend=False)
    first = next(d for _, _, d in with_trend if d is not None)
    first_without = next(d for _, _, d in without if d is not None)
    assert first.at < first_without.at
    assert "heading for" in first.reason and first.forecast is not None
    assert first.as_json()["forecast"] == round(first.forecast, 3)
    # At every second, the trend's count is at least the queue depth's.
    assert all(a[1] >= b[1] for a, b in zip(with_trend, without, strict=True))


rates = st.lists(st.floats(min_value=0, max_value=2000, allow_nan=False), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(rates, st.integers(1, 4), st.integers(0, 8))
def test_with_the_trend_never_below_min_nor_above_max(
    series: list[float], low: int, extra: int
) -> None:
    high = low + extra
    assert all(low <= c <= high for _, c, _ in scale(series, low=low, high=high))


@settings(max_examples=200, deadline=None)
@given(rates)
def test_with_the_trend_cool_downs_hold_between_changes(series: list[float]) -> None:
    assert_cool_downs_hold(scale(series), POLICY)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0, max_value=2000, allow_nan=False))
def test_a_steady_rate_gets_the_same_decisions_as_without_the_trend(rate: float) -> None:
    steady = [rate] * 60
    assert [c for _, c, _ in scale(steady)] == [c for _, c, _ in scale(steady, trend=False)]


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=50, max_value=2000, allow_nan=False),
    st.floats(min_value=0.1, max_value=0.9),
)
def test_a_falling_rate_never_removes_capacity_earlier(start: float, fall: float) -> None:
    falling = [start] * 20 + [start * (1 - fall * i / 30) for i in range(30)]
    with_trend, without = scale(falling), scale(falling, trend=False)
    assert all(a[1] >= b[1] for a, b in zip(with_trend, without, strict=True))
