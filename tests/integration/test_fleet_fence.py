"""The rollout record's script and the step counts against a real redis-server, with two
fleet members in this process (no gateway): a leader deposed while it still believes it leads
has its late write refused in Redis; a record only moves forward; the counts of two processes
add up and are read incrementally."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis as redis_client
from prometheus_client import CollectorRegistry

from failwell.config.fleet import FleetConfig
from failwell.fleet.fleet import Fleet
from failwell.rollout.record import Record, RolloutSpec, State, encode_record
from failwell.rollout.split import ArmStats
from failwell.testing import FakeClock
from tests.integration.conftest import Stack

TARGET = "score/primary"


def member(url: str, name: str, registry: CollectorRegistry | None = None, **clock: Any) -> Fleet:
    config = FleetConfig(redis=url, instance=name, lease=1.0)
    return Fleet(config, registry or CollectorRegistry(), **clock)


def record(rollout: str, leader: str, actions: list[str], state: State = State.RUNNING) -> bytes:
    decisions = [{"action": a, "at": time.time(), "step": 1} for a in actions]
    return encode_record(
        Record.of(
            RolloutSpec("score", "primary", "scorer@v2", (50, 100), 1.0),
            id=rollout,
            caller=None,
            state=state,
            step=1,
            weight=0.5,
            started=time.time(),
            leader=leader,
            decisions=decisions,
        )
    )


def test_a_deposed_leaders_late_write_is_refused_by_the_fence(stack: Stack) -> None:
    redis = stack.redis()
    r = redis_client.Redis(port=redis.port)

    def stored() -> dict[str, Any]:
        return dict(json.loads(r.hget("{failwell:default}:rollouts", TARGET) or b"{}"))

    async def scenario() -> None:
        # a's clock stands still: after its lease runs out in Redis it still believes it leads,
        # as a leader paused past its lease does when it runs again
        metrics = CollectorRegistry()
        a, b = member(redis.url, "a", metrics, clock=FakeClock()), member(redis.url, "b")
        try:
            await a.lease.renew()
            assert a.lease.leading and a.lease.token == 1
            assert await a.rollouts.write(TARGET, record("r1", "a", ["start", "step"])) is True

            r.delete("{failwell:default}:lease:control")  # a's lease runs out in Redis
            await b.lease.renew()
            assert b.lease.token == 2
            adopted = record("r1", "b", ["start", "step", "adopted"])
            assert await b.rollouts.write(TARGET, adopted) is True

            assert a.lease.leading  # a's own view: it never noticed
            late = record("r1", "a", ["start", "step", "step_passed", "step"])
            assert await a.rollouts.write(TARGET, late) is False
            assert stored()["leader"] == "b" and len(stored()["decisions"]) == 3
            refused = {"result": "refused"}
            assert metrics.get_sample_value("failwell_fleet_fenced_writes_total", refused) == 1

            # the holder's own writes must move the record forward, one rollout per tier
            assert await b.rollouts.write(TARGET, adopted) is False  # no new decision
            assert await b.rollouts.write(TARGET, record("r2", "b", ["start"])) is False
            ended = record("r1", "b", ["start", "step", "adopted", "aborted"], State.ABORTED)
            assert await b.rollouts.write(TARGET, ended) is True
            more = record("r1", "b", ["start", "step", "adopted", "aborted", "step"])
            assert await b.rollouts.write(TARGET, more) is False  # nothing after the end
            assert await b.rollouts.write(TARGET, record("r2", "b", ["start"])) is True

            # an unreadable record in the way does not block the fleet for ever
            r.hset("{failwell:default}:rollouts", TARGET, b"not json")
            assert await b.rollouts.write(TARGET, record("r3", "b", ["start"])) is True
        finally:
            for fleet in (a, b):
                await fleet.link.stop()

    asyncio.run(scenario())


def test_step_counts_of_two_processes_add_up(stack: Stack) -> None:
    redis = stack.redis()

    def arms(n: int, errors: int, value: float) -> tuple[ArmStats, ArmStats]:
        stable, candidate = ArmStats(), ArmStats()
        for i in range(n):
            stable.ok(0.01, {"score": 1.0})
            if i < errors:
                candidate.failed(0.02, "status")
            else:
                candidate.ok(0.02, {"score": value})
        return stable, candidate

    async def scenario() -> None:
        a, b = member(redis.url, "a"), member(redis.url, "b")
        try:
            a_arms, b_arms = arms(30, 2, 5.0), arms(10, 1, 7.0)
            a.rollouts.count(TARGET, "r1:1", *a_arms)
            b.rollouts.count(TARGET, "r1:1", *b_arms)
            await a.rollouts.flush()
            await b.rollouts.flush()
            got = await a.rollouts.counts("r1:1")
            assert got is not None
            stable, candidate = got
            assert (stable.requests, candidate.requests, candidate.errors) == (40, 40, 3)
            assert candidate.last_error == "status"
            assert sorted(set(candidate.outputs)) == [5.0, 7.0] and len(stable.latencies) == 40

            # more answers here: only what is new is sent, and read
            for _ in range(5):
                a_arms[1].ok(0.03, {"score": 9.0})
            await a.rollouts.flush()
            await a.rollouts.flush()  # nothing new: nothing sent
            again = await a.rollouts.counts("r1:1")
            assert again is not None
            assert again[1].requests == 45 and len(again[1].latencies) == 45
            assert again[1].outputs.count(9.0) == 5

            # a new step is counted apart; the step before is flushed once more, then left
            a_arms[1].ok(0.03, {"score": 9.0})
            a.rollouts.count(TARGET, "r1:2", ArmStats(), ArmStats())
            await a.rollouts.flush()
            last = await b.rollouts.counts("r1:1")
            fresh = await b.rollouts.counts("r1:2")
            assert last is not None and last[1].requests == 46
            assert fresh is not None and fresh[1].requests == 0
        finally:
            for fleet in (a, b):
                await fleet.link.stop()

    asyncio.run(scenario())
