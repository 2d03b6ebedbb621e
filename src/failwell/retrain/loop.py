"""The retraining loop: drift, live quality, freshness or a schedule start a training job; a
candidate that passes its gate goes through a canary rollout, which promotes it or rolls it
back on its own. No human step, and every hand-off is an audit record naming its cause.

One ``RetrainLoop`` per gateway, started with the other control loops by the composition root
(one object with ``start``/``stop``, so a fleet can run it on one gateway only). It looks at
the signals every ``retrain.every``; a signal that fires asks the route's ``TriggerPolicy``
(cool-down, daily cap, one job at a time) and, when allowed, a cycle runs beside the loop:

  trigger → job_started (→ checkpoint ... → job_died → job_started: resumed) → job_ended
  → gate → canary_started → decision (promoted | rolled_back | rejected | failed | aborted)

In a fleet the loop runs on the lease holder. A canary outlives its cycle when the lease moves
mid-canary: the next holder's rollout controller finishes it, and that holder's loop learns
of it from the fleet's rollout records (``canary_adopted``, then its ``decision``), recorded
once in the fleet whichever process sees the end (``retrain/outcomes.py``).

What it needs of the other parts comes in as ``Hooks`` (the alert states, the rollout
controller, the audit log), so this package imports no sibling control plane; the training
job runs as a child process (``failwell train --events``), reading and writing the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.background import finish
from failwell.clock import Clock
from failwell.config.models import FailwellConfig
from failwell.config.retrain import RetrainCanary, RetrainConfig, Signal
from failwell.contracts import AdminCall, AdminRoute
from failwell.errors import ConfigError, ConfigIssue
from failwell.observe.logging import log
from failwell.registry.artifacts import parse_ref
from failwell.retrain.metrics import RetrainMetrics
from failwell.retrain.outcomes import LOOP, FleetCanaries, Outcomes
from failwell.retrain.policy import TriggerPolicy
from failwell.retrain.process import Event, JobOutcome, TrainingProcess
from failwell.training.runner import load_job

TIMELINE = 500  # events kept for the dashboard


# the detail of ``signal``'s alert when it fires for the route, else None
Firing = Callable[[str, Signal], dict[str, Any] | None]
# canary ``candidate`` (NAME@VERSION) on the route's tier, its record carrying ``origin``:
# (final state, reason)
Canary = Callable[[str, str, str, RetrainCanary, dict[str, Any]], Awaitable[tuple[str, str]]]


@dataclass(frozen=True)
class Hooks:
    """What the loop needs of the gateway (the composition root passes the real ones)."""

    firing: Firing
    canary: Canary
    audit: Callable[[str, dict[str, Any]], None]
    fleet: FleetCanaries | None = None  # the fleet's retraining canaries (None: alone)


Train = Callable[[str, RetrainConfig, Event], Awaitable[JobOutcome]]


@dataclass
class RouteLoop:
    route: str
    config: RetrainConfig
    tier: str
    policy: TriggerPolicy
    state: str = "watching"  # watching, training, canary
    held: str | None = None  # the last refusal recorded (recorded again only when it changes)
    cycle: int | None = None
    task: asyncio.Task[None] | None = None
    token: str | None = None  # the canary this route's cycle drives
    adopted: str | None = None  # the rollout of a canary no cycle here drives, while it runs
    last: dict[str, Any] = field(default_factory=dict)


def tier_of(config: FailwellConfig, route: str, wanted: str | None) -> str | None:
    """The name of ``route``'s model tier ``wanted`` (the first model tier when None)."""
    for tier in config.routes[route].tiers:
        if tier.backend is not None and wanted in (None, tier.name):
            return tier.name
    return None


class RetrainLoop:
    def __init__(
        self,
        hooks: Hooks,
        clock: Clock,
        config_path: Path | None = None,
        train: Train | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.hooks, self.clock, self.config_path = hooks, clock, config_path
        self.metrics = RetrainMetrics(registry or CollectorRegistry())
        self.routes: dict[str, RouteLoop] = {}
        self.timeline: deque[dict[str, Any]] = deque(maxlen=TIMELINE)
        self.outcomes = Outcomes(hooks.fleet)
        self._train = train or self._process
        self._cycles = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self.processes: dict[str, TrainingProcess] = {}

    @staticmethod
    def prepare(config: FailwellConfig) -> None:
        """Check each loop's job file: it loads, trains the model its tier serves and, taking
        its data from the log, names a route and has a log to read (a ConfigError names
        ``routes.NAME.retrain.job``)."""
        issues = []
        for name, rc in config.routes.items():
            if rc.retrain is None:
                continue
            where = f"routes.{name}.retrain.job"
            try:
                job = load_job(Path(rc.retrain.job))
            except ConfigError as exc:
                issues += [
                    ConfigIssue(f"{where}: {i.path}".rstrip(": "), i.message) for i in exc.issues
                ]
                continue
            tier = next(
                (
                    t
                    for t in rc.tiers
                    if t.backend is not None and rc.retrain.tier in (None, t.name)
                ),
                None,
            )
            ref = None if tier is None else config.backends[tier.backend or ""].model_ref
            if ref is not None and parse_ref(ref)[0] != job.model:
                issues.append(
                    ConfigIssue(where, f"the job trains {job.model!r}; the tier serves {ref}")
                )
            logged = job.from_log
            if logged is not None and logged.route not in config.routes:
                issues.append(ConfigIssue(f"{where}: from_log.route", "no such route"))
            if logged is not None and not config.log.enabled:
                issues.append(ConfigIssue(f"{where}: from_log", "needs log.enabled"))
        if issues:
            raise ConfigError(issues)

    def bind(self, config: FailwellConfig) -> None:
        """Follow a config: a route whose loop config is unchanged keeps its policy (its
        cool-down and count of jobs today) and its running cycle."""
        old, fresh = self.routes, {}
        now = self.clock.now()
        for name, rc in config.routes.items():
            cfg = rc.retrain
            if cfg is None:
                continue
            kept = old.get(name)
            if kept is not None and kept.config == cfg:
                fresh[name] = kept
                continue
            tier = tier_of(config, name, cfg.tier)
            assert tier is not None  # checked when the config loaded
            policy = TriggerPolicy(cfg.cooldown, cfg.max_per_day, cfg.schedule, created=now)
            if kept is not None:  # a changed config keeps the count: no storm by reloading
                policy.starts, policy.running = kept.policy.starts, kept.policy.running
            fresh[name] = RouteLoop(name, cfg, tier, policy)
        self.routes = fresh

    # -- the loop -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retrain-loop")

    async def stop(self) -> None:
        tasks = [self._task] + [r.task for r in self.routes.values()]
        for task in tasks:
            if task is not None:
                with contextlib.suppress(Exception):
                    await finish(task)
        for proc in list(self.processes.values()):
            await proc.kill()

    async def _run(self) -> None:
        while True:
            every = min((r.config.every for r in self.routes.values()), default=5.0)
            await asyncio.sleep(every)
            try:
                await self.follow_fleet()
                self.tick()
            except Exception as exc:  # keep watching; a bug here must not stop the loop
                log.error("retrain_tick_failed", exc_info=exc)

    def tick(self) -> list[str]:
        """Look at every route's signals once; start the cycles they are allowed. Returns the
        routes whose cycle started."""
        started = []
        now = self.clock.now()
        for name, loop in self.routes.items():
            if loop.policy.running or loop.adopted is not None:
                continue
            cause = self._cause(loop, now)
            if cause is None:
                loop.held = None
                continue
            decision = loop.policy.ask(now)
            triggers = self.metrics.triggers
            if not decision.start:
                if decision.reason != loop.held:  # one record per reason, not one per tick
                    loop.held = decision.reason
                    self._record(loop, "held", cause=cause, reason=decision.reason)
                    triggers.labels(name, cause["signal"], decision.outcome).inc()
                continue
            triggers.labels(name, cause["signal"], decision.outcome).inc()
            loop.held = None
            loop.policy.started(now)
            loop.cycle = next(self._cycles)
            self._record(loop, "trigger", cause=cause)
            loop.task = asyncio.get_running_loop().create_task(self._cycle(loop, cause))
            started.append(name)
        return started

    def _cause(self, loop: RouteLoop, now: float) -> dict[str, Any] | None:
        for signal in loop.config.triggers:
            if signal is Signal.SCHEDULE:
                if loop.policy.due(now):
                    return {"signal": signal.value, "every": loop.config.schedule}
                continue
            detail = self.hooks.firing(loop.route, signal)
            if detail is not None:
                return {"signal": signal.value, **detail}
        return None

    async def _cycle(self, loop: RouteLoop, cause: dict[str, Any]) -> None:
        signal = cause["signal"]
        try:
            loop.state = "training"

            def event(kind: str, detail: dict[str, Any]) -> None:
                self._record(loop, kind, signal=signal, **detail)

            outcome = await self._train(loop.route, loop.config, event)
            self._record(
                loop,
                "job_ended",
                signal=signal,
                version=outcome.version,
                runs=outcome.runs,
                resumed_from=outcome.resumed_from,
                metrics=outcome.metrics,
                error=outcome.error,
            )
            registered = "failed" if outcome.version is None else "registered"
            self.metrics.jobs.labels(loop.route, registered).inc()
            if outcome.version is None:
                self._decide(loop, "failed", signal, outcome.error or "no version registered")
                return
            gate = outcome.gate or {"passed": True, "reason": "the job has no gate"}
            self._record(
                loop,
                "gate",
                signal=signal,
                version=outcome.version,
                passed=outcome.passed,
                **{k: v for k, v in gate.items() if k != "passed"},
            )
            verdict = "passed" if outcome.passed else "rejected"
            self.metrics.gate.labels(loop.route, verdict).inc()
            if not outcome.passed:
                self._decide(loop, "rejected", signal, str(gate.get("reason")), outcome.version)
                return
            loop.state, loop.token = "canary", uuid.uuid4().hex
            self.outcomes.driving.add(loop.token)
            self._record(loop, "canary_started", signal=signal, version=outcome.version)
            origin = {"loop": LOOP, "token": loop.token, "cycle": loop.cycle, "signal": signal}
            state, reason = await self.hooks.canary(
                loop.route, loop.tier, outcome.version, loop.config.canary, origin
            )
            if await self.outcomes.claim(loop.token):  # else recorded elsewhere or later
                self.metrics.rollouts.labels(loop.route, state).inc()
                self._decide(loop, state, signal, reason, outcome.version)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the route stuck in "training"
            log.error("retrain_cycle_failed", exc_info=exc)
            self._decide(loop, "failed", signal, f"loop error: {exc}")
        finally:
            if loop.token is not None:
                self.outcomes.driving.discard(loop.token)
            loop.state, loop.token = "watching", None
            loop.policy.ended()

    async def follow_fleet(self) -> None:
        """Learn from the fleet's rollout records of the retraining canaries no cycle here
        drives: shown while they run, their outcome recorded (once in the fleet) at the end."""
        for learned in await self.outcomes.scan(self.routes.keys()):
            canary, loop = learned.canary, self.routes[learned.canary.route]
            origin = {
                "signal": canary.origin.get("signal"),
                "from_cycle": canary.origin.get("cycle"),
            }
            candidate = canary.candidate
            if learned.kind == "adopted":
                loop.adopted = canary.rollout
                if not loop.policy.running:
                    loop.state = "canary"
                self._record(
                    loop, "canary_adopted", rollout=canary.rollout, version=candidate, **origin
                )
                continue
            if loop.adopted == canary.rollout:
                loop.adopted = None
                if not loop.policy.running:
                    loop.state = "watching"
            if learned.record:
                self.metrics.rollouts.labels(canary.route, canary.state).inc()
                signal = str(origin["signal"])
                self._decide(loop, canary.state, signal, canary.reason, candidate, canary.rollout)

    async def _process(self, route: str, config: RetrainConfig, event: Event) -> JobOutcome:
        proc = TrainingProcess(
            Path(config.job), self.config_path, config.timeout, config.restarts, event
        )
        self.processes[route] = proc
        try:
            return await proc.run()
        finally:
            del self.processes[route]

    # -- the record -----------------------------------------------------------------------

    def _decide(
        self,
        loop: RouteLoop,
        decision: str,
        signal: str,
        reason: str,
        version: str | None = None,
        adopted: str | None = None,
    ) -> None:
        """Record the cycle's decision (``adopted``: the rollout of a canary a cycle of
        another process started, learned from the fleet's record)."""
        loop.last = {"decision": decision, "reason": reason, "version": version, "signal": signal}
        if adopted is not None:
            loop.last["adopted_rollout"] = adopted
        self._record(loop, "decision", **loop.last)

    def _record(self, loop: RouteLoop, event: str, **detail: Any) -> None:
        entry = {
            "at": self.clock.wall(),
            "route": loop.route,
            "cycle": loop.cycle,
            "event": event,
            **detail,
        }
        self.timeline.append(entry)
        self.hooks.audit(f"retrain.{event}", {k: v for k, v in entry.items() if k != "at"})
        shown = {k: v for k, v in entry.items() if k not in ("at", "event", "metrics")}
        log.info("retrain", retrain_event=event, **shown)

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        routes = {}
        for name, loop in self.routes.items():
            policy = loop.policy
            routes[name] = {
                "state": loop.state,
                "tier": loop.tier,
                "triggers": [s.value for s in loop.config.triggers],
                "cycle": loop.cycle,
                "jobs_today": len(policy.starts),
                "max_per_day": policy.max_per_day,
                "cooldown_left": max(
                    0.0, policy.cooldown - (now - policy.starts[-1]) if policy.starts else 0.0
                ),
                "held": loop.held,
                "adopted_rollout": loop.adopted,
                "job_pid": proc.pid if (proc := self.processes.get(name)) is not None else None,
                "last": loop.last,
            }
        return {"routes": routes, "timeline": list(self.timeline)}

    def admin_routes(self) -> list[AdminRoute]:
        async def show(call: AdminCall) -> tuple[int, Any]:
            return 200, self.status()

        return [AdminRoute("GET", "/admin/retrain", show)]
