"""The autoscaling decision: by hand for each rule, and with hypothesis for what must hold
whatever the load does (bounds, cool-downs, no flapping, monotone in the load)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from failwell.config.managed import AutoscaleConfig
from failwell.supervisor.autoscale import Autoscaler, Decision
from failwell.testing.fakes import FakeClock
from tests.unit.supervisor.properties import assert_cool_downs_hold

POLICY = AutoscaleConfig(
    target_in_flight=4,
    target_p99=0.1,
    tolerance=0.1,
    interval=1.0,
    up_window=3.0,
    down_window=10.0,
    up_cooldown=5.0,
    down_cooldown=10.0,
    max_step_up=4,
    max_step_down=1,
)


def run(
    loads: list[float],
    low: int = 2,
    high: int = 10,
    p99s: list[float | None] | None = None,
    **policy: Any,
) -> list[tuple[float, int, Decision | None]]:
    """Feed one measurement per interval; the desired count follows each decision."""
    clock = FakeClock()
    scaler = Autoscaler(POLICY.model_copy(update=policy), low, high, clock)
    current = low
    out = []
    for i, load in enumerate(loads):
        clock.advance(1.0)
        decision = scaler.decide(current, load, (p99s or [None] * len(loads))[i])
        if decision is not None:
            current = decision.desired
        out.append((clock.now(), current, decision))
    return out


def test_queue_depth_scales_up_after_the_up_window_and_down_after_the_down_window() -> None:
    steps = run([40.0] * 10 + [4.0] * 100)
    counts = [c for _, c, _ in steps]
    assert counts[:3] == [2, 2, 2]  # the up window (3 s) is not covered yet
    assert counts[3] == 6  # 40 in flight / 4 = 10 wanted, at most +4 per decision
    assert counts[7] == 6 and counts[8] == 10  # after the up cool-down (5 s)
    assert max(counts) == 10
    assert counts[-1] == 2  # one step down per down cool-down, back to min
    downs = [d for _, _, d in steps if d is not None and d.direction == "down"]
    assert all(d.desired == d.current - 1 for d in downs)
    assert "in flight per replica" in downs[0].reason and "sustained 10s" in downs[0].reason


def test_a_short_spike_moves_nothing() -> None:
    counts = [c for _, c, _ in run([4.0] * 5 + [40.0] * 2 + [8.0] * 10)]
    assert set(counts) == {2}


def test_latency_above_target_votes_up_with_the_ratio_capped() -> None:
    steps = run([8.0] * 6, p99s=[0.5] * 6)
    decision = next(d for _, _, d in steps if d is not None)
    assert decision.desired == 4  # 2 * min(0.5 / 0.1, 2)
    assert "p99 500.0 ms above the target 100.0 ms" in decision.reason


def test_a_count_outside_the_range_is_brought_inside_at_once() -> None:
    clock = FakeClock()
    scaler = Autoscaler(POLICY, 3, 5, clock)
    decision = scaler.decide(1, 0.0, None)
    assert decision is not None and decision.desired == 3
    decision = scaler.decide(9, 0.0, None)
    assert decision is not None and decision.desired == 5


loads = st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(loads, st.integers(1, 4), st.integers(0, 8))
def test_never_below_min_nor_above_max(series: list[float], low: int, extra: int) -> None:
    high = low + extra
    assert all(low <= c <= high for _, c, _ in run(series, low, high))


@settings(max_examples=200, deadline=None)
@given(loads)
def test_no_flapping_cool_downs_hold_between_changes(series: list[float]) -> None:
    assert_cool_downs_hold(run(series), POLICY)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_steady_load_settles_and_stays(load: float) -> None:
    steps = run([load] * 120, low=2, high=10)
    tail = [c for _, c, _ in steps[60:]]
    assert len(set(tail)) == 1
    settled = tail[0]
    # What the queue depth asks for, or a count already within the tolerance of it.
    assert settled == min(max(-(-load // 4), 2), 10) or abs(load / settled / 4 - 1) <= 0.1


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
def test_more_load_never_asks_for_fewer_replicas(current: int, a: float, b: float) -> None:
    scaler = Autoscaler(POLICY.model_copy(update={"tolerance": 0.0}), 1, 50, FakeClock())
    low, high = sorted((a, b))
    assert scaler.recommend(current, low, None)[0] <= scaler.recommend(current, high, None)[0]
