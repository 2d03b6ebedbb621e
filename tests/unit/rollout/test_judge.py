"""The rollout's traffic split and its gates, with fake adapters and a fake clock."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from failwell.contracts import Request, Result
from failwell.errors import InvalidInput, UpstreamStatus
from failwell.resilience.breaker import Breaker
from failwell.resilience.deadline import Deadline
from failwell.resilience.retry import RetryPolicy
from failwell.rollout.admin import parse_spec
from failwell.rollout.judge import Gates, Outcome, distance, judge
from failwell.rollout.split import ArmStats, SplitTier, numbers
from failwell.routing.pool import Pool, Replica
from failwell.routing.tiers import ModelTier
from failwell.testing import FakeAdapter, FakeClock


def tier(clock: FakeClock, outputs: object, fail: bool = False) -> ModelTier:
    async def handler(request: Request, timeout: float) -> Result:
        if fail:
            raise UpstreamStatus("boom", status=500)
        return Result(outputs, "v")

    replica = Replica("r", FakeAdapter(handler), Breaker(100, 5.0, 1, clock))
    pool = Pool("b", [replica], RetryPolicy(1, 0.0, 0.0), timeout=1.0, clock=clock)
    return ModelTier("primary", "full", 0.0, pool)


def arm(n: int, errors: int = 0, latency: float = 0.01, value: float = 1.0) -> ArmStats:
    stats = ArmStats()
    for i in range(n):
        if i < errors:
            stats.failed(latency, "status")
        else:
            stats.ok(latency, {"score": value + (i % 10) / 10})
    return stats


def test_judge_gates() -> None:
    gates = Gates()
    stable = arm(200)
    assert judge(stable, arm(50), gates, final=True).outcome is Outcome.PASS
    assert judge(stable, arm(10), gates, final=True).outcome is Outcome.WAIT
    assert judge(stable, arm(50), gates, final=False).outcome is Outcome.WAIT
    early = judge(stable, arm(12, errors=6), gates, final=False)
    assert early.outcome is Outcome.FAIL and "error rate" in early.reason
    slow = judge(stable, arm(50, latency=0.2), gates, final=True)
    assert slow.outcome is Outcome.FAIL and "p99" in slow.reason
    skew = judge(stable, arm(50, value=9.0), gates, final=True)
    assert skew.outcome is Outcome.FAIL and "distance" in skew.reason


def test_numbers_flattens_answers() -> None:
    assert list(numbers({"a": [1, 2.5, {"b": 3}], "c": "x", "d": True})) == [1.0, 2.5, 3.0]


def test_split_sends_its_share_and_falls_back_to_stable_when_the_candidate_fails() -> None:
    clock = FakeClock()
    split = SplitTier(
        tier(clock, {"s": 1}), tier(clock, None, fail=True), clock=clock, rng=random.Random(1)
    )
    split.weight = 0.5

    async def go() -> list[object]:
        return [
            (await split.answer(Request("r", {}, Deadline(1.0, clock)), 1.0)).outputs
            for _ in range(100)
        ]

    answers = asyncio.run(go())
    assert answers == [{"s": 1}] * 100  # every caller got stable's answer
    assert 30 < split.candidate_stats.errors < 70
    assert split.stable_stats.requests == 100


def test_shadow_copies_go_to_the_candidate_and_are_discarded() -> None:
    clock = FakeClock()
    split = SplitTier(tier(clock, {"s": 1}), tier(clock, {"c": 2}), shadow=True, clock=clock)

    async def go() -> list[object]:
        out = [
            (await split.answer(Request("r", {}, Deadline(1.0, clock)), 1.0)).outputs
            for _ in range(10)
        ]
        await split.drain()
        return out

    assert asyncio.run(go()) == [{"s": 1}] * 10
    assert split.candidate_stats.requests == 10


def test_parse_spec_names_the_bad_field() -> None:
    ok = parse_spec({"route": "r", "tier": "t", "candidate": "m@v2", "step_time": "1s"})
    assert ok.steps == (5, 25, 50, 100) and ok.step_time == 1.0
    for body, field in (
        ({"tier": "t", "candidate": "c"}, "route"),
        ({"route": "r", "tier": "t", "candidate": "c", "steps": [0]}, "steps"),
        ({"route": "r", "tier": "t", "candidate": "c", "step_time": "soon"}, "step_time"),
        ({"route": "r", "tier": "t", "candidate": "c", "shadow": "yes"}, "shadow"),
        ({"route": "r", "tier": "t", "candidate": "c", "gates": {"nope": 1}}, "gates"),
    ):
        with pytest.raises(InvalidInput) as err:
            parse_spec(body)
        assert err.value.field == field


def test_a_closed_in_process_model_is_an_upstream_failure_not_a_crash() -> None:
    from failwell.backends.python import PythonAdapter
    from failwell.errors import UpstreamUnavailable

    async def go() -> None:
        adapter = PythonAdapter("m", "failwell.testing.models:Echo", {}, 1)
        await adapter.close()
        with pytest.raises(UpstreamUnavailable):
            await adapter.call(Request("r", {}, Deadline(1.0)), 1.0)
        assert adapter.busy == 0

    asyncio.run(go())


def test_distance_matches_scipy_ks_statistic() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(11)
    samples = [
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ([0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 2.0]),
        (list(rng.normal(0, 1, 300)), list(rng.normal(0.3, 1.2, 170))),
        (list(rng.integers(0, 4, 90).astype(float)), list(rng.integers(1, 6, 40).astype(float))),
    ]
    for a, b in samples:
        assert distance(a, b) == pytest.approx(ks_2samp(a, b).statistic)
    with pytest.raises(ValueError):
        distance([], [1.0])
