"""Pool and tier-chain logic with fake adapters (no network, no sleeps)."""

import asyncio
from typing import Any

import pytest

from failwell.contracts import Request, Result
from failwell.errors import (
    AllTiersFailed,
    NoHealthyReplica,
    TierFailed,
    UpstreamContextLength,
    UpstreamRefused,
    UpstreamRejected,
    UpstreamStatus,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from failwell.observe.metrics import Metrics
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.resilience.deadline import Deadline
from failwell.resilience.retry import RetryPolicy
from failwell.routing.chain import TierChain
from failwell.routing.pool import Pool, Replica
from failwell.routing.tiers import ModelTier, RulesTier, StaticTier
from failwell.testing import FakeAdapter, FakeClock


def ok(label: str) -> FakeAdapter:
    async def handler(request: Request, timeout: float) -> Result:
        return Result({"from": label}, "v1")

    return FakeAdapter(handler)


def failing(exc: Exception) -> FakeAdapter:
    async def handler(request: Request, timeout: float) -> Result:
        raise exc

    return FakeAdapter(handler)


def request(clock: FakeClock, deadline: float = 1.0) -> Request:
    return Request("r", {"x": 1}, Deadline(deadline, clock))


def pool(replicas: list[Replica], clock: FakeClock, attempts: int = 2) -> Pool:
    return Pool("b", replicas, RetryPolicy(attempts, 0.0, 0.0), timeout=0.1, clock=clock)


def rep(
    label: str, adapter: FakeAdapter, clock: FakeClock, priority: int = 0, threshold: int = 2
) -> Replica:
    return Replica(label, adapter, Breaker(threshold, 5.0, 1, clock), priority)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_least_outstanding_and_round_robin() -> None:
    clock = FakeClock()
    a, b = rep("a", ok("a"), clock), rep("b", ok("b"), clock)
    p = pool([a, b], clock)
    picks = [p.pick().label for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(picks) == ["a", "a", "b", "b"]
    a.outstanding = 3
    assert all(p.pick() is b for _ in range(5))


def test_retry_goes_to_another_replica_and_failures_open_the_breaker() -> None:
    clock = FakeClock()
    dead = rep("dead", failing(UpstreamUnavailable("refused")), clock, threshold=2)
    live = rep("live", ok("live"), clock)
    p = pool([dead, live], clock)
    for _ in range(6):
        result, replica = run(p.call(request(clock), 0.5))
        assert replica is live and result.outputs == {"from": "live"}
    assert dead.breaker.state is BreakerState.OPEN


def test_backoff_between_attempts_sleeps_on_the_injected_clock() -> None:
    clock = FakeClock()
    calls: list[float] = []

    async def flaky(request: Request, timeout: float) -> Result:
        calls.append(clock.now())
        if len(calls) < 3:
            raise UpstreamUnavailable("refused")
        return Result({"ok": True})

    policy = RetryPolicy(3, backoff=0.010, max_backoff=0.020)
    replicas = [rep("a", FakeAdapter(flaky), clock, threshold=10)]
    p = Pool("b", replicas, policy, timeout=0.1, clock=clock, sleep=clock.sleep)
    result, _ = run(p.call(request(clock), 0.5))
    assert result.outputs == {"ok": True}
    assert len(clock.slept) == 2 and all(0 <= s <= 0.020 for s in clock.slept)
    assert calls[2] - calls[0] == pytest.approx(sum(clock.slept))  # no real time passed


def test_caller_error_from_upstream_is_not_retried_nor_counted() -> None:
    clock = FakeClock()
    bad = failing(UpstreamRejected("400"))
    r = rep("a", bad, clock, threshold=1)
    p = pool([r], clock, attempts=3)
    for _ in range(3):
        with pytest.raises(UpstreamRejected):
            run(p.call(request(clock), 0.5))
    assert len(bad.calls) == 3  # one call per request: never retried
    assert r.breaker.state is BreakerState.CLOSED


def test_standby_group_only_when_primary_group_unavailable_and_gives_back() -> None:
    clock = FakeClock()
    primary = rep("east", failing(UpstreamStatus("500", status=500)), clock, threshold=1)
    standby = rep("west", ok("west"), clock, priority=1)
    p = pool([primary, standby], clock, attempts=1)
    with pytest.raises(UpstreamStatus):
        run(p.call(request(clock), 0.5))
    assert primary.breaker.state is BreakerState.OPEN
    assert run(p.call(request(clock), 0.5))[1] is standby
    primary.adapter = ok("east")
    clock.advance(5.0)  # recovery: east gets a probe and takes traffic back
    assert run(p.call(request(clock), 0.5))[1] is primary
    assert primary.breaker.state is BreakerState.CLOSED
    assert all(run(p.call(request(clock), 0.5))[1] is primary for _ in range(3))


def test_no_replica_available_is_a_short_circuit() -> None:
    clock = FakeClock()
    r = rep("a", ok("a"), clock)
    r.breaker.record_failure()
    r.breaker.record_failure()
    with pytest.raises(NoHealthyReplica):
        run(pool([r], clock).call(request(clock), 0.5))


def test_chain_falls_through_and_labels_the_answer() -> None:
    clock = FakeClock()
    metrics = Metrics()
    dead = pool([rep("a", failing(UpstreamUnavailable("refused")), clock)], clock)

    def broken(inputs: dict[str, Any]) -> Any:
        raise KeyError("boom")

    chain = TierChain(
        "r",
        [
            ModelTier("primary", "full", 0.0, dead),
            RulesTier("rules", "generic", 0.0, broken, "m:broken"),
            StaticTier("static", "minimal", 0.0, {"items": [1]}),
        ],
        metrics,
        clock=clock,
    )
    answer = run(chain.run(request(clock), clock.now()))
    assert (answer.tier, answer.quality, answer.outputs) == ("static", "minimal", {"items": [1]})
    assert [f.tier for f in answer.failures] == ["primary", "rules"]
    assert [f.kind for f in answer.failures] == ["unavailable", "rules_error"]
    text = metrics.render().decode()
    assert 'failwell_fallbacks_total{error="rules_error",from_tier="rules",route="r"} 1.0' in text
    assert 'failwell_requests_total{outcome="ok",route="r",tier="static"} 1.0' in text


def test_open_tier_is_skipped_without_calling_it() -> None:
    clock = FakeClock()
    adapter = ok("a")
    r = rep("a", adapter, clock, threshold=1)
    r.breaker.record_failure()
    stored: list[Any] = []
    chain = TierChain(
        "r",
        [
            ModelTier("primary", "full", 0.0, pool([r], clock)),
            StaticTier("static", "minimal", 0.0, 0),
        ],
        Metrics(),
        store=lambda req, out, v: stored.append(out),
        clock=clock,
    )
    answer = run(chain.run(request(clock), clock.now()))
    assert answer.tier == "static" and adapter.calls == [] and stored == []
    assert answer.failures[0].kind == "no_healthy_replica"


def test_tier_one_answer_is_stored_and_all_failed_lists_each_tier() -> None:
    clock = FakeClock()
    stored: list[Any] = []
    chain = TierChain(
        "r",
        [ModelTier("primary", "full", 0.0, pool([rep("a", ok("a"), clock)], clock))],
        Metrics(),
        store=lambda req, out, v: stored.append((out, v)),
        clock=clock,
    )
    assert run(chain.run(request(clock), clock.now())).tier == "primary"
    assert stored == [({"from": "a"}, "v1")]
    dead = TierChain(
        "r",
        [
            ModelTier(
                "p", "full", 0.0, pool([rep("a", failing(UpstreamUnavailable("x")), clock)], clock)
            )
        ],
        Metrics(),
        clock=clock,
    )
    with pytest.raises(AllTiersFailed) as info:
        run(dead.run(request(clock), clock.now()))
    assert [(f.tier, f.kind) for f in info.value.failures] == [("p", "unavailable")]


def test_cache_tier_ages_answers_on_the_injected_clock() -> None:
    from failwell.routing.tiers import CacheTier
    from failwell.store.cache import AnswerCache

    clock = FakeClock()
    cache = AnswerCache(":memory:", clock=clock)
    cache.put("k", {"items": [1]}, "v1")
    tier = CacheTier("cache", "stale", 0.0, cache, lambda request: "k", ttl=60.0, clock=clock)
    clock.advance(30)
    got = run(tier.answer(request(clock), 0.1))
    assert got.outputs == {"items": [1]} and got.age == pytest.approx(30)
    clock.advance(31)
    with pytest.raises(TierFailed, match="over the TTL"):
        run(tier.answer(request(clock), 0.1))


def test_a_tier_without_what_the_request_needs_is_skipped_with_the_reason() -> None:
    clock = FakeClock()
    textonly = ok("text")
    chain = TierChain(
        "r",
        [
            ModelTier(
                "small", "reduced", 0.0, pool([rep("t", textonly, clock)], clock), frozenset()
            ),
            ModelTier("large", "full", 0.0, pool([rep("l", ok("large"), clock)], clock)),
            StaticTier("static", "minimal", 0.0, "sorry"),
        ],
        Metrics(),
        clock=clock,
    )
    req = request(clock)
    req.needs = frozenset({"tools"})
    answer = run(chain.run(req, clock.now()))
    assert answer.tier == "large" and textonly.calls == []
    assert [(f.tier, f.kind) for f in answer.failures] == [("small", "unsupported")]
    assert "tools" in answer.failures[0].message
    req = request(clock)
    req.needs = frozenset({"vision"})
    assert run(chain.run(req, clock.now())).tier == "large"


def test_a_429_cools_the_replica_down_and_moves_on_at_once() -> None:
    clock = FakeClock()
    throttled = failing(UpstreamThrottled("429", retry_after=5.0))
    a, b = rep("a", throttled, clock), rep("b", ok("b"), clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    p = Pool("b", [a, b], RetryPolicy(2, 0.05, 0.05), timeout=0.1, clock=clock, sleep=sleep)
    for _ in range(3):  # whichever it picks first, b answers, and a is never tried twice
        assert run(p.call(request(clock), 1.0))[1] is b
    assert len(throttled.calls) == 1 and slept == []
    assert not a.available() and a.breaker.state is BreakerState.CLOSED
    clock.advance(5.0)
    assert a.available()


def test_a_timed_out_replica_is_not_retried_for_the_same_request() -> None:
    clock = FakeClock()
    silent = failing(UpstreamTimeout("silent"))
    p = pool([rep("a", silent, clock, threshold=10)], clock, attempts=3)
    with pytest.raises(UpstreamTimeout):
        run(p.call(request(clock), 1.0))
    assert len(silent.calls) == 1


def test_an_upstream_refusal_reaches_the_caller_and_no_later_tier_is_asked() -> None:
    clock = FakeClock()
    refusing = failing(UpstreamRefused("content filter", status=400, body=b"{}"))
    later = ok("later")
    chain = TierChain(
        "r",
        [
            ModelTier("primary", "full", 0.0, pool([rep("a", refusing, clock)], clock)),
            ModelTier("fallback", "reduced", 0.0, pool([rep("b", later, clock)], clock)),
            StaticTier("static", "minimal", 0.0, "sorry"),
        ],
        Metrics(),
        clock=clock,
    )
    with pytest.raises(UpstreamRefused):
        run(chain.run(request(clock), clock.now()))
    assert later.calls == []
    context = failing(UpstreamContextLength("too long", status=400))
    chain.tiers[0] = ModelTier("primary", "full", 0.0, pool([rep("c", context, clock)], clock))
    answer = run(chain.run(request(clock), clock.now()))
    assert answer.tier == "fallback" and answer.failures[0].kind == "context_length"
