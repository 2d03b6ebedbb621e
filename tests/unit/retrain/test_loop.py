"""The retraining loop's decisions on a fake clock: a flapping signal starts one job per
cool-down and never more than the daily cap; each refusal is recorded once with its reason;
a cycle hands a passing candidate to the canary and records every step; a job that dies is
run again and resumes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from failwell.config import parse_config
from failwell.config.models import FailwellConfig
from failwell.config.retrain import RetrainCanary, RetrainConfig, Signal
from failwell.errors import ConfigError
from failwell.retrain.loop import Hooks, RetrainLoop
from failwell.retrain.policy import DAY, TriggerPolicy
from failwell.retrain.process import Event, JobOutcome, TrainingProcess
from failwell.testing.fakes import FakeClock


def config(**retrain: Any) -> FailwellConfig:
    return parse_config(
        {
            "backends": {
                "m": {"protocol": "python", "target": "x:y", "model_ref": "scorer@production"}
            },
            "routes": {
                "r": {
                    "input": {"a": "float"},
                    "drift": {},
                    "retrain": {"job": "job.yaml", **retrain},
                    "tiers": [{"name": "model", "backend": "m"}, {"name": "s", "value": 0}],
                }
            },
        },
        resolve=False,
    )


def test_a_flapping_signal_starts_one_job_per_cooldown_and_at_most_the_cap() -> None:
    policy = TriggerPolicy(cooldown=600, max_per_day=3)
    clock = FakeClock(0.0)
    started = []
    for _ in range(24 * 60):  # the signal asks every minute for a day, each job takes 5 min
        clock.advance(60)
        if policy.running and clock.t - policy.starts[-1] >= 300:
            policy.ended()
        if policy.ask(clock.t).start:
            policy.started(clock.t)
            started.append(clock.t)
    assert started == [60, 660, 1260]  # a cool-down apart; the cap after three
    assert policy.ask(clock.t).reason == "3 jobs in the last 24 hours (the cap)"
    clock.advance(DAY)
    assert policy.ask(clock.t).start  # a new day
    policy.started(clock.t)
    assert policy.ask(clock.t + 1).reason == "a job for this route is running"
    policy.ended()
    assert policy.ask(clock.t + 1).reason.startswith("cooling down (599s left")


def test_the_schedule_is_due_its_interval_after_the_last_start() -> None:
    policy = TriggerPolicy(cooldown=0, max_per_day=10, schedule=3600, created=100)
    assert not policy.due(3000) and policy.due(3700)
    policy.started(3700)
    assert not policy.due(7000) and policy.due(7300)


class Driver:
    """Hooks and a training job under the test's control."""

    def __init__(self) -> None:
        self.firing: dict[str, Any] | None = None
        self.audit: list[tuple[str, dict[str, Any]]] = []
        self.jobs = 0
        self.canaries: list[str] = []
        self.outcome = JobOutcome(
            version="scorer@v2", gate={"passed": True, "reason": "held"}, runs=1
        )

    def hooks(self) -> Hooks:
        async def canary(
            route: str, tier: str, candidate: str, c: RetrainCanary, origin: dict[str, Any]
        ) -> tuple[str, str]:
            self.canaries.append(f"{route}/{tier}:{candidate}")
            return "promoted", "every step held"

        return Hooks(
            firing=lambda route, signal: self.firing if signal is Signal.DRIFT else None,
            canary=canary,
            audit=lambda action, detail: self.audit.append((action, detail)),
        )

    async def train(self, route: str, cfg: RetrainConfig, event: Event) -> JobOutcome:
        self.jobs += 1
        event("job_started", {"run": 1})
        event("checkpoint", {"step": 10})
        return self.outcome


async def settle(loop: RetrainLoop) -> None:
    for r in loop.routes.values():
        if r.task is not None:
            await r.task


def test_the_loop_holds_a_flapping_signal_and_records_each_step() -> None:
    async def scenario() -> None:
        clock, driver, metrics = FakeClock(0.0), Driver(), CollectorRegistry()
        loop = RetrainLoop(driver.hooks(), clock, train=driver.train, registry=metrics)
        loop.bind(config(cooldown="1h", max_per_day=2))
        assert loop.tick() == []  # no signal
        driver.firing = {"features": ["a"], "window": 300}
        assert loop.tick() == ["r"]
        await settle(loop)
        for _ in range(50):  # the signal stays on (and flaps) for 50 minutes: held
            clock.advance(60)
            driver.firing = None if driver.firing else {"features": ["a"]}
            assert loop.tick() == []
        held = [d for a, d in driver.audit if a == "retrain.held"]
        assert held and all(d["reason"].startswith("cooling down") for d in held)
        assert len(held) < 50  # once per reason, not once per tick
        clock.advance(600)
        driver.firing = {"features": ["a"]}
        assert loop.tick() == ["r"]
        await settle(loop)
        clock.advance(7200)
        assert loop.tick() == []  # the cap: 2 a day
        assert driver.jobs == 2 and driver.canaries == ["r/model:scorer@v2"] * 2
        actions = [a for a, _ in driver.audit if a != "retrain.held"]
        cycle = ["trigger", "job_started", "checkpoint", "job_ended", "gate", "canary_started"]
        assert actions[:7] == [f"retrain.{e}" for e in [*cycle, "decision"]]
        trigger = driver.audit[0][1]
        assert trigger["cause"] == {"signal": "drift", "features": ["a"], "window": 300}
        assert driver.audit[-1][0] == "retrain.held"
        assert "the cap" in driver.audit[-1][1]["reason"]
        status = loop.status()
        assert status["routes"]["r"]["jobs_today"] == 2
        assert status["routes"]["r"]["last"]["decision"] == "promoted"

        def sample(name: str, **labels: str) -> float | None:
            return metrics.get_sample_value(
                f"failwell_retrain_{name}_total", {"route": "r", **labels}
            )

        assert sample("triggers", signal="drift", outcome="started") == 2
        assert sample("triggers", signal="drift", outcome="cooldown") == len(held)
        assert sample("triggers", signal="drift", outcome="cap") == 1
        assert sample("jobs", outcome="registered") == 2
        assert sample("gate_verdicts", verdict="passed") == 2
        assert sample("rollouts", decision="promoted") == 2

    asyncio.run(scenario())


def test_a_candidate_the_gate_rejects_goes_to_no_canary() -> None:
    async def scenario() -> None:
        clock, driver = FakeClock(0.0), Driver()
        driver.outcome = JobOutcome(
            version="scorer@v2", gate={"passed": False, "reason": "auc 0.5 is worse"}, runs=1
        )
        driver.firing = {"features": ["a"]}
        metrics = CollectorRegistry()
        loop = RetrainLoop(driver.hooks(), clock, train=driver.train, registry=metrics)
        loop.bind(config())
        loop.tick()
        await settle(loop)
        assert driver.canaries == []
        verdicts = {"route": "r", "verdict": "rejected"}
        assert metrics.get_sample_value("failwell_retrain_gate_verdicts_total", verdicts) == 1
        assert loop.status()["routes"]["r"]["last"] == {
            "decision": "rejected",
            "reason": "auc 0.5 is worse",
            "version": "scorer@v2",
            "signal": "drift",
        }

    asyncio.run(scenario())


def test_retrain_config_errors_name_the_key_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config(triggers=["quality", "schedule"], tier="nope", max_per_day=0)
    paths = {i.path for i in caught.value.issues}
    assert "routes.r.retrain.max_per_day" in paths
    with pytest.raises(ConfigError) as caught:
        config(triggers=["quality", "schedule"], tier="nope")
    found = {i.path: i.message for i in caught.value.issues}
    assert "quality.objective" in found["routes.r.retrain.triggers[0]"]
    assert "schedule" in found["routes.r.retrain.triggers[1]"]
    assert found["routes.r.retrain.tier"] == "no such model tier in the route"
    job = tmp_path / "job.yaml"
    job.write_text("model: other\nentry: a:b\ndata: d.jsonl\n")
    cfg = config()
    route = cfg.routes["r"]
    assert route.retrain is not None
    moved = route.model_copy(update={"retrain": route.retrain.model_copy(update={"job": str(job)})})
    with pytest.raises(ConfigError) as caught:
        RetrainLoop.prepare(cfg.model_copy(update={"routes": {"r": moved}}))
    assert caught.value.issues[0].path == "routes.r.retrain.job"
    assert "trains 'other'" in caught.value.issues[0].message
    job.write_text("model: scorer\nentry: a:b\nfrom_log: {route: nope}\n")
    with pytest.raises(ConfigError) as caught:
        RetrainLoop.prepare(cfg.model_copy(update={"routes": {"r": moved}}))
    assert {i.path: i.message for i in caught.value.issues} == {
        "routes.r.retrain.job: from_log.route": "no such route",
        "routes.r.retrain.job: from_log": "needs log.enabled",
    }


SCRIPT = """
import json, os, signal, sys
marker = sys.argv[1]
if not os.path.exists(marker):
    open(marker, "w").close()
    print(json.dumps({"event": "checkpoint", "step": 5}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
print(json.dumps({"event": "checkpoint", "step": 10}), flush=True)
print(json.dumps({"event": "done", "version": "m@v2", "resumed_from": 5, "gate": None}))
"""


class Scripted(TrainingProcess):
    def __init__(self, marker: Path, event: Event) -> None:
        super().__init__(marker, None, 30.0, 1, event)

    def argv(self) -> list[str]:
        return [sys.executable, "-c", SCRIPT, str(self.job)]


def test_a_job_that_dies_is_run_again_and_its_outcome_read(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    proc = Scripted(tmp_path / "marker", lambda kind, detail: seen.append((kind, detail)))
    outcome = asyncio.run(proc.run())
    assert outcome.version == "m@v2" and outcome.resumed_from == 5 and outcome.runs == 2
    assert outcome.passed and outcome.error is None
    assert [k for k, _ in seen] == [
        "job_started",
        "checkpoint",
        "job_died",
        "job_started",
        "checkpoint",
    ]
    assert seen[2][1]["killed_by"] == 9


def test_signals_are_read_from_the_route_s_alerts() -> None:
    from failwell.gateway.retraining import signal_reader
    from failwell.health.alerts import Alert

    alerts = {
        ("r", "drift", "ticket"): Alert("r", "drift", "ticket", True, detail={"features": ["a"]}),
        ("r", "freshness", "page"): Alert("r", "freshness", "page", True, detail={"burn": 20}),
        ("r", "quality_live", "page"): Alert("r", "quality_live", "page", False),
        ("q", "quality_live", "page"): Alert("q", "quality_live", "page", True),
    }
    firing = signal_reader(alerts)
    assert firing("r", Signal.DRIFT) == {"features": ["a"]}
    assert firing("r", Signal.FRESHNESS) == {"burn": 20}
    assert firing("r", Signal.QUALITY) is None and firing("q", Signal.QUALITY) == {}
    assert firing("r", Signal.SCHEDULE) is None
