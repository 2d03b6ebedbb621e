"""The fleet's SLO counts in a real redis-server: two processes' counts (in-process instances,
each its own link, on one clock that moves only when told) add up to exactly what each counted
over every window, through idle spells and gaps longer than the longest window; the SLO
evaluator judges them, and falls back to its own counts when Redis is gone."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from failwell.config.fleet import FleetConfig
from failwell.config.observe import AlertsConfig, BurnWindow, SloConfig
from failwell.fleet.fleet import Fleet
from failwell.health.alerts import SloEvaluator
from failwell.health.slo import SLOTS, RouteSlo, SloTracker
from failwell.testing import FakeClock
from tests.integration.conftest import Stack

WINDOWS = (BurnWindow(long=60.0, short=10.0, burn_rate=2.0),)  # buckets of 1 s, 60 of them


class Process:
    def __init__(self, name: str, url: str, clock: FakeClock) -> None:
        self.registry = CollectorRegistry()
        config = FleetConfig(redis=url, instance=name, reconnect=0.05, max_reconnect=0.2)
        self.fleet = Fleet(config, self.registry, clock)
        self.slo = RouteSlo("r", SloConfig(availability=0.9, windows=WINDOWS), clock)
        self.fleet.slo.bind({"r": self.slo})


async def until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def test_the_fleets_counts_are_the_sum_of_every_processs(stack: Stack) -> None:
    redis = stack.redis()
    clock, rng = FakeClock(1_000_000.0), random.Random(3)

    async def scenario() -> None:
        a, b = Process("a", redis.url, clock), Process("b", redis.url, clock)
        for p in (a, b):
            await p.fleet.link.start()
        try:
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up)
            steps = [rng.uniform(0.2, 3.0) for _ in range(120)]
            steps[40], steps[80] = 75.0, 20.0  # a gap longer than the longest window; a pause
            for i, step in enumerate(steps):
                clock.advance(step)
                for p in (a, b) if i < 60 else (a,):  # b goes quiet halfway
                    for _ in range(rng.randrange(4)):
                        p.slo.counts.add(clock.now(), rng.randrange(SLOTS))
                    await p.fleet.slo.flush()
                fleet = await b.fleet.slo.windows({"r": [10.0, 60.0]})
                assert fleet is not None
                for w in (10.0, 60.0):
                    summed = [x + y for x, y in zip(a.slo.totals(w), b.slo.totals(w), strict=True)]
                    assert fleet["r"][w] == summed, (i, w)

            # Redis gone: no fleet counts; the evaluator judges its own, and says so
            evaluator = SloEvaluator(
                SloTracker({"r": a.slo}), AlertsConfig(), CollectorRegistry(), clock
            )
            evaluator.fleet = a.fleet.slo
            for _ in range(20):
                a.slo.counts.add(clock.now(), 0)
                a.slo.counts.add(clock.now(), 1)  # every request failed
            redis.proc.kill(signal.SIGKILL)
            redis.proc.wait(5)
            assert await until(lambda: not a.fleet.link.up)
            counts = await evaluator.fleet_counts()
            assert counts is None
            (event,) = [e for e in evaluator.evaluate(counts) if e["slo"] == "availability"]
            assert event["state"] == "firing" and event["counts"] == "local"
            fallbacks = a.registry.get_sample_value(
                "failwell_fleet_fallbacks_total", {"part": "slo"}
            )
            assert fallbacks == 1
        finally:
            for p in (a, b):
                await p.fleet.link.stop()

    asyncio.run(scenario())
