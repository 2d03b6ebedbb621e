"""The rollouts in place in this process: a split tier standing in for a model tier, put in
place and taken out the same way whether this process runs the rollout's controller or follows
the fleet's record of it.

Placing builds the candidate here (each process loads and warms a registry version itself, as
its registry watcher does; a backend candidate is that backend's pool), puts the split in
place of the tier, and from each step on adds the step's answers to the counts the judge reads
(``Shared.count``). Ending puts the tier back: promoted, the loaded candidate is adopted (a
registry model, whose alias the controller has moved) or the tier serves the candidate backend;
rolled back or aborted, stable again, and the candidate is unloaded.

A process that does not control a rollout follows its record (``follow``): the records of a
route and tier are applied one at a time, the newest waiting, and only one that has more
decisions than the rollout here (a record only moves forward; a late or echoed one is older).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.backends.python import PythonAdapter
from failwell.background import finish
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.errors import Conflict, FailwellError, InvalidInput
from failwell.observe import families
from failwell.observe.logging import log
from failwell.registry.artifacts import Version
from failwell.registry.serving import RegistryModel, retire
from failwell.resilience.breaker import Breaker
from failwell.rollout.record import (
    Alone,
    Record,
    RolloutSpec,
    Shared,
    State,
    decode_record,
    encode_record,
)
from failwell.rollout.split import ArmStats, SplitTier
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.routing.tiers import ModelTier


@dataclass
class Rollout:
    spec: RolloutSpec
    id: str
    split: SplitTier
    index: int  # the tier's place in the chain
    stable: ModelTier
    candidate: ModelTier
    caller: str | None
    version: Version | None = None  # when the candidate comes from the registry
    model: RegistryModel | None = None
    adapter: PythonAdapter | None = None
    state: State = State.RUNNING
    closing: bool = False  # its end has begun here
    step: int = 0
    weight: float = 0.0  # as recorded; the split takes it once the record is written
    reason: str = ""
    leader: str = ""  # the instance whose controller decides
    started: float = field(default_factory=time.time)
    finished: float | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None  # its controller, while it runs in this process
    aborting: str | None = None  # why an operator aborts it
    counted: str = ""  # the step whose answers this process counts
    judged: tuple[ArmStats, ArmStats] | None = None  # what the controller here read last

    @property
    def controlled(self) -> bool:
        """Its controller runs in this process."""
        return self.task is not None and not self.task.done()

    @property
    def key(self) -> str:
        """The current step's counts."""
        return f"{self.id}:{self.step}"

    def record(self, state: State | None = None) -> Record:
        return Record.of(
            self.spec,
            id=self.id,
            caller=self.caller,
            state=state or self.state,
            step=self.step,
            weight=self.weight,
            started=self.started,
            finished=self.finished,
            reason=self.reason,
            leader=self.leader,
            decisions=self.decisions,
        )

    def follow(self, record: Record) -> None:
        """Take what ``record`` says happened (it is newer than what this process knows)."""
        self.step, self.weight, self.leader = record.step, record.weight, record.leader
        self.started, self.finished, self.reason = record.started, record.finished, record.reason
        self.decisions = list(record.decisions)

    def status(self) -> dict[str, Any]:
        s = self.spec
        stable, candidate = self.judged or (self.split.stable_stats, self.split.candidate_stats)
        return {
            "id": self.id,
            "route": s.route,
            "tier": s.tier,
            "candidate": s.candidate,
            "state": self.state.value,
            "shadow": s.shadow,
            "steps": list(s.steps),
            "step": self.step,
            "weight": self.split.weight,
            "reason": self.reason,
            "leader": self.leader,
            "counts": "judged" if self.judged else "this process",
            "started": self.started,
            "finished": self.finished,
            "stable_stats": stable.summary(),
            "candidate_stats": candidate.summary(),
            "decisions": self.decisions,
            "origin": s.origin,
        }


class Splits:
    """Every rollout placed in this process (a ``Service``: ``stop`` ends the following)."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        pools: Mapping[str, Pool],
        registry: CollectorRegistry,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.routes, self.pools, self.clock = routes, pools, clock
        self.shared: Shared = Alone()
        self.me = ""  # this process's name in a fleet
        self.all: list[Rollout] = []
        self.weight = families.ROLLOUT_CANDIDATE_WEIGHT.gauge(registry)
        self.follow_failures = families.ROLLOUT_FOLLOW_FAILURES.counter(registry)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, Record] = {}  # target → the newest record not applied yet
        self._following: dict[str, asyncio.Task[None]] = {}

    @property
    def busy(self) -> bool:
        """A rollout is in place here (a config reload waits for it to end)."""
        return any(r.state is State.RUNNING for r in self.all)

    def running(self, route: str, tier: str | None = None) -> Rollout | None:
        for r in self.all:
            if not r.closing and r.spec.route == route and tier in (None, r.spec.tier):
                return r
        return None

    def find(self, rollout_id: str) -> Rollout | None:
        return next((r for r in self.all if r.id == rollout_id), None)

    def lock(self, target: str) -> asyncio.Lock:
        """Held while a route and tier's split is placed, followed or taken over."""
        return self._locks.setdefault(target, asyncio.Lock())

    def held(self) -> dict[str, bytes]:
        """The records of the rollouts running here (put back into an emptied store)."""
        return {
            r.spec.target: encode_record(r.record())
            for r in self.all
            if r.state is State.RUNNING and not r.closing
        }

    # -- in place and out -------------------------------------------------------------------

    async def place(self, spec: RolloutSpec, rollout_id: str, caller: str | None) -> Rollout:
        """Put a split for ``spec`` in place of its tier, at weight 0 (hold ``lock``)."""
        route = self.routes.get(spec.route)
        if route is None:
            raise InvalidInput(f"route: no route {spec.route!r}", field="route")
        if self.running(spec.route, spec.tier):
            raise InvalidInput(f"tier: a rollout of {spec.target} is running", field="tier")
        tiers = route.chain.tiers
        index = next((i for i, t in enumerate(tiers) if t.name == spec.tier), None)
        stable = None if index is None else tiers[index]
        if index is None or not isinstance(stable, ModelTier):
            raise InvalidInput(f"tier: {spec.route} has no model tier {spec.tier!r}", "tier")
        r = await self._candidate(spec, rollout_id, index, stable, caller)
        if self.routes.get(spec.route) is not route:  # a reload replaced it while loading
            if r.adapter is not None:
                await retire(r.adapter)
            raise Conflict(f"route {spec.route!r} was reloaded meanwhile; start again")
        self.all.append(r)
        tiers[index] = r.split
        return r

    async def _candidate(
        self, spec: RolloutSpec, rollout_id: str, index: int, stable: ModelTier, caller: str | None
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
        split = SplitTier(stable, candidate, spec.shadow, self.clock)
        return Rollout(
            spec, rollout_id, split, index, stable, candidate, caller, version, model, adapter
        )

    def apply(self, r: Rollout) -> None:
        """Put ``r``'s recorded step in place here: its weight, and a new window of counts
        when the step is new."""
        if r.counted != r.key:
            r.split.reset()
            r.counted, r.judged = r.key, None
            self.shared.count(r.spec.target, r.key, r.split.stable_stats, r.split.candidate_stats)
        r.split.weight = r.weight
        self.weight.labels(r.spec.route, r.spec.tier).set(r.weight)

    async def end(self, r: Rollout, state: State, reason: str) -> None:
        """Put the tier back (serving the candidate when promoted); the state changes last, so
        a reader who sees it sees everything done."""
        if r.closing:
            return
        r.closing, r.reason = True, reason
        tiers = self.routes[r.spec.route].chain.tiers
        r.split.weight = 0.0
        self.weight.labels(r.spec.route, r.spec.tier).set(0.0)
        if state is State.PROMOTED:
            if r.model is not None and r.version is not None and r.adapter is not None:
                await r.model.adopt(r.version, r.adapter)  # stable now serves the candidate
                tiers[r.index] = r.stable
            else:
                tiers[r.index] = r.candidate
        else:
            tiers[r.index] = r.stable
        r.state, r.finished = state, r.finished or time.time()
        await r.split.drain()
        if state is not State.PROMOTED and r.adapter is not None:
            await retire(r.adapter)

    async def match(self, record: Record) -> Rollout:
        """This process's rollout for a running ``record``, brought up to it: placed now if it
        is not here (another one in place of the same tier ends); raises when it cannot be."""
        r = self.find(record.id)
        if r is None:
            other = self.running(record.spec.route, record.spec.tier)
            if other is not None:
                await self.end(other, State.ABORTED, f"replaced by rollout {record.id}")
            r = await self.place(record.spec, record.id, record.caller)
        if len(record.decisions) > len(r.decisions):
            r.follow(record)
        return r

    # -- following the fleet's records ------------------------------------------------------

    def follow(self, raw: bytes) -> None:
        """A record another process wrote (or read after a reconnection): applied in order."""
        try:
            record = decode_record(raw)
        except ValueError as exc:
            log.warning("rollout_record_unreadable", error=str(exc))
            return
        target = record.spec.target
        self._pending[target] = record
        if target not in self._following:
            task = asyncio.get_running_loop().create_task(self._catch_up(target))
            self._following[target] = task

    async def _catch_up(self, target: str) -> None:
        try:
            while (record := self._pending.pop(target, None)) is not None:
                async with self.lock(target):
                    await self._apply_record(record)
        finally:
            del self._following[target]

    async def _apply_record(self, record: Record) -> None:
        r = self.find(record.id)
        if r is not None and (r.closing or len(record.decisions) <= len(r.decisions)):
            return  # not newer than what this process knows
        if r is not None and r.controlled and r.task is not None:
            # another controller wrote it: this one was deposed and stops here (its split stays)
            log.warning("rollout_taken_over", rollout=r.id, by=record.leader, instance=self.me)
            await finish(r.task)
        if record.state is State.RUNNING:
            try:
                r = await self.match(record)
            except FailwellError as exc:  # stable keeps every request here
                log.warning("rollout_follow_failed", rollout=record.id, error=exc.message)
                self.follow_failures.labels(record.spec.route, record.spec.tier).inc()
                return
            if r.counted != r.key:
                log.info("rollout_followed", rollout=r.id, step=r.step, weight=r.weight)
            self.apply(r)
        elif r is not None:
            r.follow(record)
            await self.end(r, record.state, record.reason)
            log.info("rollout_ended_here", rollout=r.id, state=record.state.value)

    async def start(self) -> None:
        """Records arrive through ``Shared.follow``; nothing to start."""

    async def stop(self) -> None:
        for task in list(self._following.values()):
            await finish(task)
