"""The rollout controller in a fleet of two processes, with an in-memory fleet (``Fleet``: the
lease's holder, the records, every process's counts), fake adapters and a fake clock: a
controller whose write is refused stops and leaves its split in place, the next holder adopts
the rollout and carries it to the end, every process applies the end; a record that cannot be
placed is ended as aborted with a reason; no step passes without the fleet's counts; a
follower passes an admin start or abort to the leader and answers with its reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from failwell.config.models import RouteConfig
from failwell.contracts import AdminCall, CallAnswer, Exchange, Request, Result
from failwell.errors import FleetUnreachable, InvalidInput
from failwell.observe.metrics import Metrics
from failwell.resilience.breaker import Breaker
from failwell.resilience.deadline import Deadline
from failwell.resilience.retry import RetryPolicy
from failwell.rollout.admin import rollout_admin_routes
from failwell.rollout.controller import Rollouts
from failwell.rollout.judge import Gates
from failwell.rollout.record import (
    Record,
    RolloutSpec,
    State,
    Tally,
    decode_record,
    encode_record,
)
from failwell.rollout.split import ArmStats, SplitTier
from failwell.routing.chain import TierChain
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.routing.tiers import ModelTier, StaticTier, Tier
from failwell.testing import FakeAdapter, FakeClock

# the fake clock moves while a call waits for its turn: latency is not what these tests judge
GATES = Gates(min_requests=5, p99_slack=60.0)
SPEC = RolloutSpec("score", "primary", "cand", (50, 100), 1.0, gates=GATES)
ROUTE = RouteConfig.model_validate(
    {"input": {"x": "float"}, "tiers": [{"name": "primary", "backend": "stable"}]}
)


class Fleet:
    """What the processes share: who holds the lease, the records, each step's counts."""

    def __init__(self) -> None:
        self.holder = "a"
        self.down = False
        self.records: dict[str, bytes] = {}
        self.arms: dict[str, list[tuple[Tally, Tally]]] = {}
        self.members: list[Member] = []
        self.claimed: set[str] = set()


class Member:
    """One process's ``Shared`` over the in-memory ``Fleet``: a write passes only for the
    lease's holder, and is told to the other members."""

    tick = 0.05

    def __init__(self, fleet: Fleet, me: str) -> None:
        self.fleet, self.me = fleet, me
        self.apply: Callable[[bytes], None] | None = None
        self.answer: CallAnswer | None = None
        fleet.members.append(self)

    async def write(self, field: str, record: bytes) -> bool | None:
        if self.fleet.down:
            return None
        if self.fleet.holder != self.me:
            return False
        self.fleet.records[field] = record
        for other in self.fleet.members:
            if other is not self and other.apply is not None:
                other.apply(record)
        return True

    async def read(self) -> dict[str, bytes] | None:
        return None if self.fleet.down else dict(self.fleet.records)

    def follow(self, apply: Callable[[bytes], None], held: Callable[[], dict[str, bytes]]) -> None:
        self.apply = apply

    def count(self, field: str, key: str, stable: Tally, candidate: Tally) -> None:
        self.fleet.arms.setdefault(key, []).append((stable, candidate))

    async def counts(self, key: str) -> tuple[Tally, Tally] | None:
        if self.fleet.down:
            return None
        sums = ArmStats(), ArmStats()
        for arms in self.fleet.arms.get(key, []):
            for total, arm in zip(sums, arms, strict=True):
                total.requests += arm.requests
                total.errors += arm.errors
                total.latencies += arm.latencies
                total.outputs += arm.outputs
        return sums

    async def claim(self, name: str) -> bool | None:
        if self.fleet.down:
            return None
        taken = name not in self.fleet.claimed
        self.fleet.claimed.add(name)
        return taken

    async def ask(self, question: dict[str, Any]) -> dict[str, Any] | None:
        for other in self.fleet.members:
            if other.me == self.fleet.holder and other.answer is not None:
                return None if self.fleet.down else await other.answer(question)
        return None

    def answer_with(self, answer: CallAnswer) -> None:
        self.answer = answer


class Lead:
    """The leadership of one process: the fleet's holder."""

    def __init__(self, fleet: Fleet, me: str) -> None:
        self.fleet, self.me = fleet, me

    @property
    def leading(self) -> bool:
        return self.fleet.holder == self.me

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Tests call start and stop themselves."""


def pool(name: str, clock: FakeClock) -> Pool:
    async def answer(request: Request, timeout: float) -> Result:
        return Result({"score": 1.0}, name)

    replica = Replica("r", FakeAdapter(answer), Breaker(100, 5.0, 1, clock))
    return Pool(name, [replica], RetryPolicy(1, 0.0, 0.0), timeout=1.0, clock=clock)


class Process:
    """One gateway process: its own pools, route and rollouts, on the shared fleet."""

    def __init__(self, fleet: Fleet, me: str, clock: FakeClock) -> None:
        self.clock = clock
        self.audits: list[tuple[str, dict[str, Any]]] = []
        self.pools = {"stable": pool("stable", clock), "cand": pool("cand", clock)}
        tiers: list[Tier] = [
            ModelTier("primary", "full", 0.0, self.pools["stable"]),
            StaticTier("static", "minimal", 0.0, {"score": -1.0}),
        ]
        self.route = Route("score", ROUTE, TierChain("score", tiers, Metrics(), clock=clock))

        async def sleep(seconds: float) -> None:
            clock.advance(seconds)
            await asyncio.sleep(0)

        self.rollouts = Rollouts(
            {"score": self.route},
            self.pools,
            lambda action, detail, caller: self.audits.append((action, detail)),
            CollectorRegistry(),
            clock,
            sleep,
        )
        self.rollouts.share(Member(fleet, me), Lead(fleet, me), me)

    @property
    def tier(self) -> Any:
        return self.route.chain.tiers[0]

    def actions(self) -> list[str]:
        return [action.removeprefix("rollout.") for action, _ in self.audits]

    async def answer(self, i: int) -> Any:
        request = Request("score", {"x": float(i % 7)}, Deadline(1.0, self.clock))
        return (await self.tier.answer(request, 1.0)).backend


async def until(check: Callable[[], bool], turns: int = 20_000) -> bool:
    """Let the loop run until ``check`` holds (bounded in turns, not in time)."""
    for _ in range(turns):
        if check():
            return True
        await asyncio.sleep(0)
    return check()


async def traffic(processes: list[Process]) -> None:
    i = 0
    while True:
        i += 1
        for p in processes:
            await p.answer(i)
        await asyncio.sleep(0)


GONE = RolloutSpec("score", "primary", "gone", (50, 100), 1.0)  # not a backend of any process


def running_record(spec: RolloutSpec, leader: str, clock: FakeClock) -> bytes:
    """A record of rollout ``r1``, running at step 1 (50 %), started by ``leader``."""
    started = {"action": "start", "at": clock.wall(), "step": 0}
    return encode_record(
        Record.of(
            spec,
            id="r1",
            caller="ops",
            state=State.RUNNING,
            step=1,
            weight=0.5,
            started=clock.wall(),
            leader=leader,
            decisions=[started],
        )
    )


def test_a_deposed_controller_stops_and_the_next_holder_carries_the_rollout_on() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        a, b = Process(fleet, "a", clock), Process(fleet, "b", clock)
        load = asyncio.get_running_loop().create_task(traffic([a, b]))
        try:
            ra = await a.rollouts.begin(SPEC)
            assert await until(lambda: isinstance(b.tier, SplitTier) and b.tier.weight == 0.5)
            assert await until(lambda: ra.step == 2)  # step 1 judged on both processes' counts
            passed = next(d for d in ra.decisions if d["action"] == "step_passed")
            assert passed["requests"] > ra.split.candidate_stats.requests  # not a's share alone

            fleet.holder = "b"  # a's lease moved on: a's next decision is refused
            assert await until(lambda: not ra.controlled)
            assert ra.state is State.RUNNING and a.tier is ra.split and a.tier.weight == 1.0
            assert "rolled_back" not in a.actions() and "aborted" not in a.actions()

            await b.rollouts.start()  # b holds the lease: it adopts the rollout
            rb = b.rollouts.all[0]
            assert await until(lambda: rb.state is State.PROMOTED)
            assert await until(lambda: ra.state is State.PROMOTED)  # a follows the record
            for p in (a, b):
                assert isinstance(p.tier, ModelTier) and p.tier.pool is p.pools["cand"]
                assert await p.answer(1) == "cand"
            assert b.actions()[0] == "adopted" and b.actions()[-1] == "promoted"
            assert a.actions().count("promoted") == 0  # decided once, by b
            assert decode_record(fleet.records[SPEC.target]).leader == "b"
        finally:
            load.cancel()
            await b.rollouts.stop()
            await a.rollouts.stop()

    asyncio.run(scenario())


def test_a_rollout_that_cannot_be_placed_is_aborted_with_a_reason() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        b = Process(fleet, "b", clock)
        fleet.holder = "b"
        spec = GONE
        fleet.records[spec.target] = running_record(spec, "x", clock)
        await b.rollouts.start()

        def ended() -> Record:
            return decode_record(fleet.records[spec.target])

        assert await until(lambda: ended().state is State.ABORTED)
        assert "could not place it" in ended().reason and "gone" in ended().reason
        assert ended().leader == "b" and [d["action"] for d in ended().decisions][-1] == "aborted"
        assert b.actions() == ["aborted"] and b.audits[0][1]["rollout"] == "r1"
        assert b.tier is b.route.chain.tiers[0] and isinstance(b.tier, ModelTier)
        await b.rollouts.stop()

    asyncio.run(scenario())


def test_no_step_passes_without_the_fleets_counts() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        a = Process(fleet, "a", clock)
        load = asyncio.get_running_loop().create_task(traffic([a]))
        try:
            ra = await a.rollouts.begin(SPEC)
            assert await until(lambda: ra.step == 1 and ra.split.candidate_stats.requests > 5)
            fleet.down = True
            started = clock.now()
            assert not await until(lambda: "step_passed" in a.actions(), turns=5_000)
            assert clock.now() - started > SPEC.step_time * 3  # past when it would give up
            assert ra.state is State.RUNNING and ra.step == 1
            fleet.down = False
            assert await until(lambda: "step_passed" in a.actions())
            assert await until(lambda: ra.state is State.PROMOTED)
        finally:
            load.cancel()
            await a.rollouts.stop()

    asyncio.run(scenario())


def test_a_record_older_than_what_a_process_knows_is_not_applied() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        a, b = Process(fleet, "a", clock), Process(fleet, "b", clock)
        ra = await a.rollouts.begin(SPEC)
        assert await until(lambda: bool(b.rollouts.all) and b.rollouts.all[0].step == 1)
        late = ra.record()
        late.decisions = late.decisions[:1]  # the start alone: older than what b applied
        late.step, late.weight = 0, 0.0
        b.rollouts.splits.follow(encode_record(late))
        for _ in range(50):
            await asyncio.sleep(0)
        assert b.rollouts.all[0].step == 1 and b.tier.weight == 0.5
        await a.rollouts.stop()
        await b.rollouts.stop()

    asyncio.run(scenario())


def test_a_follower_passes_a_start_and_an_abort_to_the_leader() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        a, b = Process(fleet, "a", clock), Process(fleet, "b", clock)
        handlers = {}
        for p in (a, b):
            for route in rollout_admin_routes(p.rollouts):
                handlers[p, route.method, route.path] = route.handler

        async def call(p: Process, path: str, body: dict[str, Any]) -> tuple[int, Any]:
            exchange = Exchange("rid", {}, path)
            exchange.caller = "ops"
            sent = AdminCall("POST", path, {}, msgspec.json.encode(body), exchange)
            return await handlers[p, "POST", path](sent)

        spec = {"route": "score", "tier": "primary", "candidate": "cand", "steps": [50, 100]}
        status, doc = await call(b, "/admin/rollouts", {**spec, "step_time": "1h"})
        assert status == 201 and doc["candidate"] == "cand"
        ra = a.rollouts.running("score")  # begun by the leader, for b's caller
        assert ra is not None and ra.controlled and ra.caller == "ops"
        assert b.rollouts.all == [] or not b.rollouts.all[0].controlled

        with pytest.raises(InvalidInput) as refused:  # refused by the leader, as it said it
            await call(b, "/admin/rollouts", {**spec, "route": "nope"})
        assert refused.value.field == "route" and "nope" in refused.value.message
        with pytest.raises(InvalidInput) as bad:  # checked here, never passed on
            await call(b, "/admin/rollouts", {**spec, "steps": [100, 5]})
        assert bad.value.field == "steps"

        status, doc = await call(b, "/admin/rollouts/abort", {"route": "score", "reason": "r"})
        assert status == 200 and ra.state is State.ABORTED and ra.reason == "r"
        assert "aborted" in a.actions() and "aborted" not in b.actions()

        fleet.down = True
        with pytest.raises(FleetUnreachable):
            await call(b, "/admin/rollouts", spec)
        await a.rollouts.stop()
        await b.rollouts.stop()

    asyncio.run(scenario())


def test_a_follower_that_cannot_place_the_split_serves_stable_and_counts_it() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        b = Process(fleet, "b", clock)  # a holds the lease; b follows
        raw = running_record(GONE, "a", clock)
        failures = b.rollouts.splits.follow_failures.labels("score", "primary")
        b.rollouts.splits.follow(raw)
        assert await until(lambda: failures._value.get() == 1)
        assert isinstance(b.tier, ModelTier) and await b.answer(1) == "stable"
        await b.rollouts.stop()

    asyncio.run(scenario())
