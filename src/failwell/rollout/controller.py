"""The rollout controller: step a candidate's share of one tier's traffic up, compare it with
stable at every step, and promote it or roll it back on its own, saying why.

A candidate is a registry ref (``NAME@VERSION``, for a tier whose backend serves from the
registry) or the name of another configured backend. During the rollout a ``SplitTier`` stands
in for the tier; at the end the tier is put back, serving the candidate (promoted: the
registry's ``production`` alias moves to it) or stable (rolled back). Every decision is kept
on the rollout and sent to ``Gateway.audit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from failwell.backends.python import PythonAdapter
from failwell.contracts import AuditSink, Leadership, Request
from failwell.errors import Conflict, FailwellError, InvalidInput
from failwell.observe import families
from failwell.observe.logging import log
from failwell.registry.artifacts import Version
from failwell.registry.serving import RegistryModel, retire
from failwell.resilience.breaker import Breaker
from failwell.resilience.deadline import Deadline
from failwell.rollout.judge import Gates, Outcome, Verdict, judge
from failwell.rollout.split import SplitTier
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.routing.tiers import ModelTier

TICK = 0.05
# (field, the rollout's status as JSON) → written? A fleet's lease writes it fenced: False once
# this process no longer holds the lease, and the rollout then stops here.
Record = Callable[[str, bytes], Awaitable[bool]]
_encode_status = msgspec.json.Encoder().encode
WAIT_FOR_TRAFFIC = 3  # a step may run this many step times to gather enough candidate answers


class State(enum.StrEnum):
    RUNNING = "running"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


@dataclass(frozen=True)
class RolloutSpec:
    route: str
    tier: str
    candidate: str  # NAME@VERSION or a backend name
    steps: tuple[int, ...] = (5, 25, 50, 100)
    step_time: float = 30.0
    shadow: bool = False
    gates: Gates = field(default_factory=Gates)
    canary_inputs: tuple[dict[str, Any], ...] = ()


@dataclass
class Rollout:
    spec: RolloutSpec
    split: SplitTier
    index: int  # the tier's place in the chain
    stable: ModelTier
    candidate: ModelTier
    caller: str | None
    version: Version | None = None  # when the candidate comes from the registry
    model: RegistryModel | None = None
    adapter: PythonAdapter | None = None
    state: State = State.RUNNING
    closing: bool = False  # _finish has begun
    step: int = 0
    reason: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        s = self.spec
        return {
            "route": s.route,
            "tier": s.tier,
            "candidate": s.candidate,
            "state": self.state.value,
            "shadow": s.shadow,
            "steps": list(s.steps),
            "step": self.step,
            "weight": self.split.weight,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "stable_stats": self.split.stable_stats.summary(),
            "candidate_stats": self.split.candidate_stats.summary(),
            "decisions": self.decisions,
        }


class Rollouts:
    """Every rollout of one gateway; at most one running per route and tier."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        pools: Mapping[str, Pool],
        audit: AuditSink,
        registry: CollectorRegistry,
    ) -> None:
        self.routes, self.pools, self._audit = routes, pools, audit
        self.all: list[Rollout] = []
        self.weight = families.ROLLOUT_CANDIDATE_WEIGHT.gauge(registry)
        self.outcomes = families.ROLLOUTS.counter(registry)
        # In a fleet: rollouts begin only where the control loops run, and every decision is
        # recorded with the lease's fencing token (``Gateway`` sets both).
        self.leadership: Leadership | None = None
        self.record: Record | None = None
        self.recorded: Callable[[], Awaitable[dict[str, Any] | None]] | None = None  # the fleet's

    @property
    def busy(self) -> bool:
        """A rollout is running (a config reload waits for it to end)."""
        return any(r.task is not None and not r.task.done() for r in self.all)

    def running(self, route: str, tier: str | None = None) -> Rollout | None:
        for r in self.all:
            if not r.closing and r.spec.route == route and tier in (None, r.spec.tier):
                return r
        return None

    async def start(self) -> None:
        """Nothing to do at start-up: rollouts begin through ``begin``."""

    async def begin(self, spec: RolloutSpec, caller: str | None = None) -> Rollout:
        if self.leadership is not None and not self.leadership.leading:
            raise Conflict(
                "this gateway does not run the fleet's control loops; start the rollout on the "
                "one whose /health/ready says fleet.leader: true"
            )
        route = self.routes.get(spec.route)
        if route is None:
            raise InvalidInput(f"route: no route {spec.route!r}", field="route")
        if self.running(spec.route, spec.tier):
            raise InvalidInput(f"tier: a rollout of {spec.route}/{spec.tier} is running", "tier")
        tiers = route.chain.tiers
        index = next((i for i, t in enumerate(tiers) if t.name == spec.tier), None)
        if index is None or not isinstance(tiers[index], ModelTier):
            raise InvalidInput(f"tier: {spec.route} has no model tier {spec.tier!r}", "tier")
        stable = tiers[index]
        assert isinstance(stable, ModelTier)
        rollout = await self._candidate(spec, index, stable, caller)
        self.all.append(rollout)
        tiers[index] = rollout.split
        self._decide(rollout, "start", candidate=spec.candidate, steps=list(spec.steps))
        rollout.task = asyncio.get_running_loop().create_task(self._run(rollout))
        return rollout

    async def _candidate(
        self, spec: RolloutSpec, index: int, stable: ModelTier, caller: str | None
    ) -> Rollout:
        pool = stable.pool
        version = model = adapter = None
        if "@" in spec.candidate:
            model = next((r.base for r in pool.replicas if isinstance(r.base, RegistryModel)), None)
            if model is None:
                raise InvalidInput(
                    f"candidate: tier {spec.tier!r} does not serve from the registry; "
                    "name a backend instead",
                    field="candidate",
                )
            if spec.candidate.split("@")[0] != model.ref.split("@")[0]:
                raise InvalidInput(
                    f"candidate: {spec.tier!r} serves {model.ref}; name a version of that model",
                    field="candidate",
                )
            try:
                version = await asyncio.to_thread(model.registry.resolve, spec.candidate)
                adapter = await model.load(version)
            except FailwellError as exc:
                raise InvalidInput(f"candidate: {exc.message}", field="candidate") from None
            cfg = model.cfg.breaker
            breaker = Breaker(cfg.failure_threshold, cfg.recovery, cfg.half_open_max)
            cand_pool = Pool(
                pool.backend, [Replica("candidate", adapter, breaker)], pool.retry, pool.timeout
            )
        elif spec.candidate in self.pools:
            cand_pool = self.pools[spec.candidate]
        else:
            raise InvalidInput(
                f"candidate: {spec.candidate!r} is neither NAME@VERSION nor a backend",
                field="candidate",
            )
        candidate = ModelTier(stable.name, stable.quality, stable.reserve, cand_pool)
        split = SplitTier(stable, candidate, spec.shadow)
        return Rollout(spec, split, index, stable, candidate, caller, version, model, adapter)

    def _decide(self, r: Rollout, action: str, **detail: Any) -> None:
        entry = {"action": action, "at": time.time(), "step": r.step, **detail}
        r.decisions.append(entry)
        audit = {"route": r.spec.route, "tier": r.spec.tier, "candidate": r.spec.candidate}
        audit.update(detail)
        self._audit(f"rollout.{action}", audit, r.caller)
        log.info("rollout_decision", action=action, **audit)

    async def _run(self, r: Rollout) -> None:
        try:
            for number, percent in enumerate(r.spec.steps, 1):
                r.step = number
                r.split.reset()
                r.split.weight = 0.0 if r.spec.shadow else percent / 100
                self.weight.labels(r.spec.route, r.spec.tier).set(r.split.weight)
                self._decide(r, "step", weight=percent, shadow=r.spec.shadow)
                if not await self._recorded(r):
                    return
                verdict = await self._watch(r)
                if verdict.outcome is Outcome.PASS:
                    verdict = await self._canary(r)
                if verdict.outcome is not Outcome.PASS:
                    await self._finish(r, State.ROLLED_BACK, verdict.reason)
                    return
                self._decide(r, "step_passed", **r.split.candidate_stats.summary())
            await self._finish(r, State.PROMOTED, "every step held")
        except asyncio.CancelledError:
            if not r.closing:
                await self._finish(r, State.ABORTED, r.reason or "aborted")
            raise
        except Exception as exc:  # a bug must not leave the split in place
            log.error("rollout_failed", exc_info=exc)
            await self._finish(r, State.ROLLED_BACK, f"controller error: {exc}")

    async def _recorded(self, r: Rollout) -> bool:
        """Record ``r``'s state for the fleet; when refused (the lease is lost) this process
        stops the rollout: the tier goes back to stable here, and the new leader decides."""
        if self.record is None:
            return True
        field = f"{r.spec.route}/{r.spec.tier}"
        if await self.record(field, _encode_status(r.status())):
            return True
        await self._finish(r, State.ABORTED, "this gateway lost the fleet's lease")
        return False

    async def _watch(self, r: Rollout) -> Verdict:
        clock = r.split.clock
        started = clock.now()
        ends, gives_up = started + r.spec.step_time, started + r.spec.step_time * WAIT_FOR_TRAFFIC
        while True:
            await asyncio.sleep(TICK)
            now = clock.now()
            verdict = judge(
                r.split.stable_stats, r.split.candidate_stats, r.spec.gates, now >= ends
            )
            if verdict.outcome is not Outcome.WAIT:
                return verdict
            if now >= gives_up:
                return Verdict(Outcome.FAIL, f"not enough traffic to judge: {verdict.reason}")

    async def _canary(self, r: Rollout) -> Verdict:
        inputs = list(r.spec.canary_inputs)
        if not inputs and r.version is not None:
            inputs = list(r.version.meta.get("sample_inputs") or [])
        route = self.routes[r.spec.route]
        for i, sample in enumerate(inputs):
            request = Request(r.spec.route, dict(sample), Deadline(route.deadline), "canary")
            try:
                await r.candidate.answer(request, route.deadline)
            except FailwellError as exc:
                return Verdict(Outcome.FAIL, f"canary check {i} failed: {exc.kind}: {exc.message}")
        return Verdict(Outcome.PASS)

    async def _finish(self, r: Rollout, state: State, reason: str) -> None:
        """Put the tier back (serving the candidate when promoted), move the alias, record the
        decision; the state changes last, so a reader who sees it sees everything done."""
        if r.closing:
            return
        r.closing, r.reason = True, reason
        tiers = self.routes[r.spec.route].chain.tiers
        r.split.weight = 0.0
        self.weight.labels(r.spec.route, r.spec.tier).set(0.0)
        finished = time.time()  # traffic leaves the split now (or at adopt, just below)
        if state is State.PROMOTED:
            if r.model is not None and r.version is not None and r.adapter is not None:
                # The alias moves first: a registry watcher that reads it between the two steps
                # then swaps to the candidate too, never back to the version it replaces.
                alias = r.model.ref.split("@")[1]
                if not (alias[0] == "v" and alias[1:].isdigit()):  # served by alias: move it
                    try:
                        await asyncio.to_thread(
                            r.model.registry.set_alias, r.version.name, alias, r.version.version
                        )
                    except FailwellError as exc:
                        r.reason += f"; moving {r.model.ref} failed: {exc.message}"
                await r.model.adopt(r.version, r.adapter)  # stable now serves the candidate
                tiers[r.index] = r.stable
                finished = time.time()
            else:
                tiers[r.index] = r.candidate
        else:
            tiers[r.index] = r.stable
        r.state, r.finished = state, finished
        self.outcomes.labels(r.spec.route, state.value).inc()
        self._decide(r, state.value, reason=r.reason, seconds=round(finished - r.started, 3))
        if self.record is not None:  # the last word, fenced too
            await self.record(f"{r.spec.route}/{r.spec.tier}", _encode_status(r.status()))
        await r.split.drain()
        if state is not State.PROMOTED and r.adapter is not None:
            await retire(r.adapter)

    async def abort(self, route: str, reason: str = "aborted by an operator") -> Rollout:
        r = self.running(route)
        if r is None:
            raise InvalidInput(f"route: no rollout running on {route!r}", field="route")
        r.reason = reason
        assert r.task is not None
        r.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await r.task
        return r

    async def stop(self) -> None:
        for r in self.all:
            if r.task is not None and not r.task.done():
                r.task.cancel()
