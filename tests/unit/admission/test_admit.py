"""Admission policies: GCRA, the concurrency limit's queue and shedding, and
admission scaled to a standby's capacity, JSON shape limits, the Redis limiter's fallback.
Rates run on a fake clock; no assertion depends on timing."""

from __future__ import annotations

import asyncio

import pytest

from failwell.admission.concurrency import ConcurrencyLimit
from failwell.admission.rate import Gcra, RedisGcra
from failwell.admission.standby import capacity_scale
from failwell.api.limits import BodyLimits
from failwell.config.security import Priority
from failwell.errors import InvalidInput, Overloaded
from failwell.resilience.breaker import Breaker
from failwell.resilience.retry import RetryPolicy
from failwell.routing.pool import Pool, Replica
from failwell.testing.fakes import FakeAdapter, FakeClock


def test_gcra_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    gcra = Gcra(clock)
    assert [gcra.check("k", rate=10, burst=3) for _ in range(3)] == [0, 0, 0]
    wait = gcra.check("k", rate=10, burst=3)
    assert wait == pytest.approx(0.1)
    clock.advance(0.1)
    assert gcra.check("k", rate=10, burst=3) == 0
    assert gcra.check("k", rate=10, burst=3) > 0


def test_gcra_keys_are_independent() -> None:
    gcra = Gcra(FakeClock())
    assert gcra.check("a", rate=1, burst=1) == 0
    assert gcra.check("a", rate=1, burst=1) > 0
    assert gcra.check("b", rate=1, burst=1) == 0


def test_gcra_long_run_rate_matches() -> None:
    clock = FakeClock()
    gcra = Gcra(clock)
    allowed = 0
    for _ in range(10_000):  # 100 attempts per second for 100 s
        clock.advance(0.01)
        allowed += gcra.check("k", rate=5, burst=2) == 0
    assert 500 <= allowed <= 502


def test_gcra_forgets_idle_keys_when_full() -> None:
    clock = FakeClock()
    gcra = Gcra(clock, max_keys=10)
    for i in range(10):
        gcra.check(f"k{i}", rate=100, burst=1)
    clock.advance(1)
    assert gcra.check("new", rate=100, burst=1) == 0
    assert len(gcra._tat) <= 10


def test_concurrency_limit_queues_then_sheds() -> None:
    async def run() -> None:
        limit = ConcurrencyLimit("r", limit=1, queue=1, queue_timeout=5.0)
        await limit.acquire()
        waiter = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        assert limit.queued == 1
        with pytest.raises(Overloaded) as refused:
            await limit.acquire()  # the queue is full
        assert refused.value.retry_after >= 1
        limit.release()
        await waiter
        assert limit.active == 1 and limit.queued == 0
        limit.release()
        assert limit.active == 0

    asyncio.run(run())


def test_interactive_traffic_is_shed_last() -> None:
    async def run() -> None:
        limit = ConcurrencyLimit("r", limit=1, queue=1, queue_timeout=5.0)
        await limit.acquire(Priority.INTERACTIVE)
        batch = asyncio.ensure_future(limit.acquire(Priority.BATCH))
        await asyncio.sleep(0)
        interactive = asyncio.ensure_future(limit.acquire(Priority.INTERACTIVE))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batch  # shed in favour of the interactive request
        limit.release()
        await interactive
        with pytest.raises(Overloaded):  # a batch request cannot displace interactive
            await limit.acquire(Priority.BATCH)
        limit.release()

    asyncio.run(run())


def test_queue_wait_is_bounded() -> None:
    async def run() -> None:
        limit = ConcurrencyLimit("r", limit=1, queue=4, queue_timeout=0.01)
        await limit.acquire()
        with pytest.raises(Overloaded):
            await limit.acquire()
        assert limit.queued == 0
        limit.release()
        assert limit.active == 0

    asyncio.run(run())


def _pool() -> tuple[Pool, list[Replica]]:
    clock = FakeClock()

    async def handler(request: object, timeout: float) -> object:
        raise AssertionError("not called")

    replicas = [
        Replica(name, FakeAdapter(handler), Breaker(1, 10.0, 1, clock), priority=p)  # type: ignore[arg-type]
        for name, p in (("a", 0), ("b", 0), ("standby", 1))
    ]
    return Pool("ranker", replicas, RetryPolicy(1, 0.0, 0.0), 1.0, clock), replicas


def test_admission_scales_to_the_standby_capacity() -> None:
    pool, (a, b, _) = _pool()
    scale = capacity_scale(pool, {"a": 4, "b": 4, "standby": 2})
    limit = ConcurrencyLimit("r", limit=40, queue=0, queue_timeout=0.01, scale=scale)
    assert scale() == 1.0 and limit.capacity() == 40
    a.healthy = b.healthy = False  # the primary zone is gone: the standby serves
    assert scale() == pytest.approx(0.25) and limit.capacity() == 10
    b.healthy = True
    assert scale() == 1.0


def test_json_shape_limits_skip_strings() -> None:
    limits = BodyLimits(1024, max_depth=3, max_elements=5)
    limits.check_json(b'{"a": "[[[[[[,,,,,,,]]]]]", "b": [1, 2]}')  # brackets inside a string
    limits.check_json(b'{"a": "\\"[[[[", "b": [[1]]}')  # an escaped quote stays in the string
    with pytest.raises(InvalidInput, match="nested deeper than 3"):
        limits.check_json(b'{"a": [[[1]]]}')
    with pytest.raises(InvalidInput, match="more than 5 values"):
        limits.check_json(b"[1, 2, 3, 4, 5, 6, 7]")


def test_redis_limiter_falls_back_and_backs_off_when_redis_is_down() -> None:
    async def run() -> None:
        clock = FakeClock()
        limiter = RedisGcra("redis://127.0.0.1:1/0", timeout=0.2, clock=clock)
        try:
            assert await limiter.acquire("k", rate=1, burst=1) == 0  # local fallback answers
            assert await limiter.acquire("k", rate=1, burst=1) > 0  # ... and still limits
            assert limiter.failures == 1  # the second call did not try Redis again
        finally:
            await limiter.close()

    asyncio.run(run())
