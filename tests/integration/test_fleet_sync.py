"""Gateways of one fleet share breaker openings through a real redis-server: in-process
instances (each its own link, pools and breakers) so the test can look inside each one."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from failwell.config.fleet import FleetConfig
from failwell.contracts import Request, Result
from failwell.fleet.fleet import Fleet
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.resilience.retry import RetryPolicy
from failwell.routing.pool import Pool, Replica
from failwell.testing import FakeAdapter
from tests.integration.conftest import Stack


async def _never(request: Request, timeout: float) -> Result:
    raise AssertionError("not called")


class Instance:
    def __init__(self, name: str, url: str) -> None:
        self.registry = CollectorRegistry()
        config = FleetConfig(redis=url, instance=name, reconnect=0.05, max_reconnect=0.2)
        self.fleet = Fleet(config, self.registry)
        replicas = [
            Replica(label, FakeAdapter(_never), Breaker(3, 30.0, 1)) for label in ("r1", "r2")
        ]
        self.pool = Pool("model", replicas, RetryPolicy(1, 0, 0), 1.0)
        self.fleet.bind({"model": self.pool})

    def breaker(self, label: str) -> Breaker:
        return next(r.breaker for r in self.pool.replicas if r.label == label)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def test_an_opening_reaches_every_instance_and_survives_a_redis_outage(stack: Stack) -> None:
    redis = stack.redis()

    async def scenario() -> None:
        a, b = Instance("a", redis.url), Instance("b", redis.url)
        await a.fleet.link.start()
        await b.fleet.link.start()
        try:
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up)
            for _ in range(3):
                a.breaker("r1").record_failure()
            assert a.breaker("r1").state is BreakerState.OPEN
            assert await until(lambda: b.breaker("r1").state is BreakerState.OPEN)
            assert b.breaker("r2").state is BreakerState.CLOSED
            assert 29.0 < b.breaker("r1").open_for() <= 30.5
            assert b.metric("failwell_fleet_propagation_seconds_count", kind="breaker") >= 1
            assert a.metric("failwell_fleet_messages_total", kind="breaker", direction="out") >= 1
            # b's own breaker moved to open by a's word: b does not echo it back
            await asyncio.sleep(0.1)
            assert a.metric("failwell_fleet_messages_total", kind="breaker", direction="in") == 0

            # A gateway that joins later reads the opening from the hash.
            c = Instance("c", redis.url)
            await c.fleet.link.start()
            try:
                assert await until(lambda: c.breaker("r1").state is BreakerState.OPEN)
            finally:
                await c.fleet.link.stop()

            # Redis dies: each keeps serving on its own breakers; an opening made meanwhile
            # reaches the others once Redis is back (an empty one: nothing was saved).
            redis.proc.kill(signal.SIGKILL)
            redis.proc.wait(5)
            assert await until(lambda: not a.fleet.link.up and not b.fleet.link.up)
            for _ in range(3):
                b.breaker("r2").record_failure()
            assert b.breaker("r2").state is BreakerState.OPEN
            assert a.breaker("r2").state is BreakerState.CLOSED
            stack.redis(port=redis.port)
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up, timeout=15)
            assert await until(lambda: a.breaker("r2").state is BreakerState.OPEN)
            assert a.metric("failwell_fleet_reconnects_total") >= 1
        finally:
            await a.fleet.link.stop()
            await b.fleet.link.stop()

    asyncio.run(scenario())
