import random

from hypothesis import given
from hypothesis import strategies as st

from failwell.resilience.deadline import Deadline, reserves_after, tier_budget
from failwell.resilience.retry import RetryPolicy
from failwell.testing import FakeClock


@given(st.integers(1, 10), st.floats(0.0001, 0.1), st.floats(0.0001, 1.0), st.integers(0, 12))
def test_backoff_is_full_jitter_within_capped_exponential(
    attempts: int, base: float, cap: float, n: int
) -> None:
    policy = RetryPolicy(attempts, base, cap, random.Random(n))
    for attempt in range(2, 12):
        ceiling = policy.ceiling(attempt)
        assert ceiling == min(cap, base * 2 ** (attempt - 2))
        wait = policy.wait(attempt)
        assert 0 <= wait <= ceiling
    assert policy.ceiling(1) == 0


@given(st.integers(1, 5), st.integers(1, 8), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_retry_only_if_it_exists_and_fits(
    attempts: int, attempt: int, wait: float, remaining: float, t: float
) -> None:
    policy = RetryPolicy(attempts)
    allowed = policy.may_retry(attempt, wait, remaining, t)
    assert allowed == (attempt <= attempts and remaining >= wait + t)


@given(st.lists(st.floats(0, 1), max_size=8))
def test_reserves_after_are_suffix_sums(reserves: list[float]) -> None:
    held = reserves_after(reserves)
    for i in range(len(reserves)):
        assert abs(held[i] - sum(reserves[i + 1 :])) < 1e-9
    if reserves:
        assert held[-1] == 0


@given(st.floats(0.001, 10), st.lists(st.floats(0, 0.5), min_size=1, max_size=6), st.floats(0, 20))
def test_every_tier_budget_leaves_later_reserves(
    deadline: float, reserves: list[float], spent: float
) -> None:
    clock = FakeClock()
    d = Deadline(deadline, clock)
    clock.advance(min(spent, deadline))
    held = reserves_after(reserves)
    for i in range(len(reserves)):
        budget = tier_budget(d.remaining(), held[i])
        assert 0 <= budget <= d.remaining()
        # spending the whole budget still leaves the later tiers what they hold back
        assert d.remaining() - budget >= min(held[i], d.remaining()) - 1e-9


def test_deadline_counts_down_and_expires() -> None:
    clock = FakeClock()
    d = Deadline(0.150, clock)
    assert abs(d.remaining() - 0.150) < 1e-9
    clock.advance(0.1)
    assert abs(d.remaining() - 0.05) < 1e-9 and not d.expired()
    clock.advance(0.1)
    assert d.remaining() == 0 and d.expired()
