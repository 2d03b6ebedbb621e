"""A retraining canary's outcome is recorded once in the fleet, by whichever process's loop
learns it: its own cycle's, or the next lease holder's, which reads the fleet's rollout
records (shows the canary as adopted while it runs, records the decision at its end). A claim
that cannot be made (the store unreachable) leaves the outcome to a later scan."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.config import parse_config
from failwell.config.models import FailwellConfig
from failwell.config.retrain import RetrainCanary, RetrainConfig, Signal
from failwell.gateway.retraining import RecordedCanaries
from failwell.retrain.loop import Hooks, RetrainLoop
from failwell.retrain.outcomes import FleetCanary, Learned, Outcomes
from failwell.retrain.process import Event, JobOutcome
from failwell.rollout.record import RolloutSpec, State, decode_record
from failwell.testing import FakeClock
from tests.unit.rollout.test_controller import GATES, Fleet, Process, traffic, until


class Canaries:
    """The fleet's retraining canaries and claims, in memory (``down``: unreachable)."""

    def __init__(self) -> None:
        self.found: list[FleetCanary] = []
        self.claimed: set[str] = set()
        self.down = False

    async def read(self) -> list[FleetCanary] | None:
        return None if self.down else list(self.found)

    async def claim(self, token: str) -> bool | None:
        if self.down:
            return None
        taken = token not in self.claimed
        self.claimed.add(token)
        return taken

    def put(self, token: str, state: str, route: str = "r") -> None:
        self.found = [c for c in self.found if c.token != token]
        origin = {"loop": "retrain", "token": token, "cycle": 3, "signal": "drift"}
        self.found.append(FleetCanary(f"id-{token}", route, "m@v2", state, "why", origin))


def scan(outcomes: Outcomes, routes: tuple[str, ...] = ("r",)) -> list[tuple[str, str, bool]]:
    learned: list[Learned] = asyncio.run(outcomes.scan(routes))
    return [(x.kind, x.canary.token, x.record) for x in learned]


def test_another_processs_canary_is_shown_while_it_runs_and_its_end_recorded_once() -> None:
    fleet = Canaries()
    here, there = Outcomes(fleet), Outcomes(fleet)
    fleet.put("t1", "running")
    assert scan(here) == [("adopted", "t1", True)]
    assert scan(here) == []  # once per canary
    assert scan(here, ("other",)) == []  # a route this loop does not retrain
    fleet.put("t1", "promoted")
    assert scan(here) == [("ended", "t1", True)]
    assert scan(here) == [] and scan(there) == []  # recorded once in the fleet


def test_an_adopted_canary_recorded_elsewhere_only_ends_here() -> None:
    fleet = Canaries()
    here, there = Outcomes(fleet), Outcomes(fleet)
    fleet.put("t1", "running")
    assert scan(here) == [("adopted", "t1", True)]
    fleet.put("t1", "rolled_back")
    assert scan(there) == [("ended", "t1", True)]
    assert scan(here) == [("ended", "t1", False)]  # shown as over, not recorded again


def test_an_adopted_canary_whose_record_is_gone_is_no_longer_shown() -> None:
    fleet = Canaries()
    here = Outcomes(fleet)
    fleet.put("t1", "running")
    assert scan(here) == [("adopted", "t1", True)]
    fleet.found = []  # a Redis that lost it, with nobody left to put it back
    assert scan(here) == [("ended", "t1", False)]
    assert scan(here) == []


def test_a_cycles_own_canary_is_recorded_by_its_claim_or_by_a_later_scan() -> None:
    fleet = Canaries()
    here, next_holder = Outcomes(fleet), Outcomes(fleet)
    here.driving.add("mine")
    fleet.put("mine", "running")
    assert scan(here) == []  # driven by a cycle here
    fleet.put("mine", "promoted")
    assert asyncio.run(here.claim("mine")) is True
    here.driving.discard("mine")
    assert scan(here) == [] and scan(next_holder) == []

    here.driving.add("late")
    fleet.put("late", "promoted")
    fleet.down = True
    assert asyncio.run(here.claim("late")) is False  # cannot claim: not recorded now
    here.driving.discard("late")
    assert scan(here) == []
    fleet.down = False
    assert scan(here) == [("ended", "late", True)]  # the scan records it, once
    assert scan(here) == [] and scan(next_holder) == []


def test_alone_a_cycle_records_its_own_canary() -> None:
    assert asyncio.run(Outcomes().claim("any")) is True
    assert scan(Outcomes()) == []


def loop_config() -> FailwellConfig:
    return parse_config(
        {
            "backends": {
                "stable": {"protocol": "python", "target": "x:y", "model_ref": "s@production"}
            },
            "routes": {
                "score": {
                    "input": {"x": "float"},
                    "drift": {},
                    "retrain": {"job": "job.yaml", "cooldown": "1h"},
                    "tiers": [{"name": "primary", "backend": "stable"}],
                }
            },
        },
        resolve=False,
    )


class Member:
    """One process: its rollouts (``Process``, on the in-memory fleet) and retraining loop."""

    def __init__(self, fleet: Fleet, me: str, clock: FakeClock) -> None:
        self.process = Process(fleet, me, clock)
        self.audit: list[tuple[str, dict[str, Any]]] = []
        self.registry = CollectorRegistry()
        rollouts = self.process.rollouts

        async def canary(
            route: str, tier: str, candidate: str, c: RetrainCanary, origin: dict[str, Any]
        ) -> tuple[str, str]:
            spec = RolloutSpec(route, tier, candidate, (50, 100), 1.0, gates=GATES, origin=origin)
            rollout = await rollouts.begin(spec, caller="retrain")
            assert rollout.task is not None
            await asyncio.wait({rollout.task})
            return rollout.state.value, rollout.reason

        async def train(route: str, cfg: RetrainConfig, event: Event) -> JobOutcome:
            return JobOutcome(version="cand", gate={"passed": True, "reason": "held"}, runs=1)

        hooks = Hooks(
            firing=lambda route, signal: {"window": 60} if signal is Signal.DRIFT else None,
            canary=canary,
            audit=lambda action, detail: self.audit.append((action, detail)),
            fleet=RecordedCanaries(rollouts),
        )
        self.loop = RetrainLoop(hooks, clock, train=train, registry=self.registry)
        self.loop.bind(loop_config())

    def events(self) -> list[str]:
        return [action.removeprefix("retrain.") for action, _ in self.audit]

    def promoted(self) -> float | None:
        labels = {"route": "score", "decision": "promoted"}
        return self.registry.get_sample_value("failwell_retrain_rollouts_total", labels)


def test_the_next_lease_holder_learns_the_outcome_of_a_canary_it_did_not_start() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        a, b, c = (Member(fleet, name, clock) for name in ("a", "b", "c"))
        processes = [a.process, b.process, c.process]
        load = asyncio.get_running_loop().create_task(traffic(processes))
        try:
            assert a.loop.tick() == ["score"]  # a leads: drift starts a cycle, then its canary
            assert await until(lambda: bool(a.process.rollouts.all))
            ra = a.process.rollouts.all[0]
            assert await until(lambda: ra.step == 1)
            record = decode_record(fleet.records["score/primary"])
            assert record.origin is not None and record.origin["loop"] == "retrain"

            fleet.holder = "b"  # a is gone mid-canary: its loop and its controller stop
            await a.loop.stop()
            await a.process.rollouts.stop()
            assert a.loop.status()["routes"]["score"]["state"] == "watching"
            assert "decision" not in a.events()

            await b.process.rollouts.start()  # b holds the lease: it adopts the rollout
            await b.loop.follow_fleet()
            status = b.loop.status()["routes"]["score"]
            assert status["state"] == "canary" and status["adopted_rollout"] == ra.id
            assert b.events() == ["canary_adopted"]
            assert b.loop.tick() == []  # no cycle of its own while the canary runs

            def ended() -> bool:
                return decode_record(fleet.records["score/primary"]).state is State.PROMOTED

            assert await until(ended)
            await b.loop.follow_fleet()
            status = b.loop.status()["routes"]["score"]
            assert status["state"] == "watching" and status["adopted_rollout"] is None
            assert status["last"]["decision"] == "promoted"
            assert status["last"]["adopted_rollout"] == ra.id
            assert status["last"]["version"] == "cand" and status["last"]["signal"] == "drift"
            assert b.events() == ["canary_adopted", "decision"]
            assert b.promoted() == 1

            await b.loop.follow_fleet()  # again, and on another process: nothing more
            await c.loop.follow_fleet()
            assert b.events() == ["canary_adopted", "decision"] and c.events() == []
            assert b.promoted() == 1 and c.promoted() is None
        finally:
            load.cancel()
            for m in (a, b, c):
                await m.loop.stop()
                await m.process.rollouts.stop()

    asyncio.run(scenario())


def test_a_cycle_that_sees_its_canary_end_records_it_and_no_other_process_does() -> None:
    async def scenario() -> None:
        clock, fleet = FakeClock(), Fleet()
        a, b = Member(fleet, "a", clock), Member(fleet, "b", clock)
        load = asyncio.get_running_loop().create_task(traffic([a.process, b.process]))
        try:
            assert a.loop.tick() == ["score"]
            task = a.loop.routes["score"].task
            assert task is not None
            await task
            assert a.events()[-1] == "decision" and a.promoted() == 1
            for m in (a, b):
                await m.loop.follow_fleet()
            assert a.events().count("decision") == 1 and b.events() == []
        finally:
            load.cancel()
            for m in (a, b):
                await m.loop.stop()
                await m.process.rollouts.stop()

    asyncio.run(scenario())
