"""The rollout controller: step a candidate's share of one tier's traffic up, compare it with
stable at every step, and promote it or roll it back on its own, saying why.

A candidate is a registry ref (``NAME@VERSION``, for a tier whose backend serves from the
registry) or the name of another configured backend. During the rollout a ``SplitTier`` stands
in for the tier (``rollout/splits.py``); at the end the tier is put back, serving the candidate
(promoted: the registry's ``production`` alias moves to it) or stable (rolled back).

Every decision is first written to the rollout's record (``rollout/record.py``), then sent to
``Gateway.audit``: in a fleet the write is fenced by the control lease, so a controller that
lost the lease decides nothing more (``Deposed``) and leaves the rollout to the next one, and
each decision is audited once. In a fleet the controller runs in the lease's holder only; every
process applies the record's split and counts its answers, and the judge reads the fleet's
counts. The holder adopts every running record no controller of its own drives (``_adopt``):
it carries on from the current step, timed afresh, or ends it as aborted, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from failwell.background import finish
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.contracts import AuditSink, CallAnswer, Leadership, Request
from failwell.errors import Conflict, FailwellError, FleetUnreachable, InvalidInput
from failwell.observe import families
from failwell.observe.logging import log
from failwell.resilience.deadline import Deadline
from failwell.rollout.judge import Outcome, Verdict, judge
from failwell.rollout.record import (
    Record,
    RolloutSpec,
    Shared,
    State,
    arm_stats,
    decode_record,
    encode_record,
)
from failwell.rollout.splits import Rollout, Splits
from failwell.routing.pool import Pool
from failwell.routing.route import Route

WAIT_FOR_TRAFFIC = 3  # a step may run this many step times to gather enough candidate answers
RETRY = 0.25  # seconds between two tries of a write while the fleet's Redis is unreachable
ADOPT_EVERY = 1.0  # the lease's holder looks for running records no controller drives
Sleep = Callable[[float], Awaitable[None]]


class Deposed(Exception):
    """The fleet refused this controller's write: it no longer holds the lease (or the record
    moved on without it). Another controller carries the rollout on."""


class Rollouts:
    """The rollouts of one gateway: at most one running per route and tier. A ``Service`` that
    runs where the fleet's control loops run (``start`` adopts, ``stop`` stops controlling)."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        pools: Mapping[str, Pool],
        audit: AuditSink,
        registry: CollectorRegistry,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.routes, self._audit, self._sleep = routes, audit, sleep
        self.splits = Splits(routes, pools, registry, clock)
        self.outcomes = families.ROLLOUTS.counter(registry)
        self.leadership: Leadership | None = None
        self.fleet = False
        self._answer: CallAnswer | None = None
        self._adopting: asyncio.Task[None] | None = None

    def share(self, shared: Shared, leadership: Leadership, me: str) -> None:
        """Keep the rollouts in ``shared`` (a fleet's) and run them where ``leadership``
        leads; ``me`` names this process in the records."""
        self.splits.shared, self.splits.me = shared, me
        self.leadership, self.fleet = leadership, True
        shared.follow(self.splits.follow, self.splits.held)
        if self._answer is not None:
            shared.answer_with(self._answer)

    @property
    def leads_here(self) -> bool:
        """Rollouts begin and abort in this process (alone, or holding the fleet's lease)."""
        return self.leadership is None or self.leadership.leading

    def answer_with(self, answer: CallAnswer) -> None:
        """How this process answers a rollout call another process passes on (while it
        leads)."""
        self._answer = answer
        self.splits.shared.answer_with(answer)

    async def ask_leader(self, question: dict[str, Any]) -> dict[str, Any]:
        """Pass an admin call to the process leading the fleet; its reply."""
        reply = await self.splits.shared.ask(question)
        if reply is None:
            raise FleetUnreachable(
                "this gateway passed the call to the one leading the fleet and no answer came "
                "(Redis unreachable, or nobody leads now); GET /admin/rollouts shows the "
                "fleet's rollouts"
            )
        return reply

    @property
    def all(self) -> list[Rollout]:
        return self.splits.all

    @property
    def busy(self) -> bool:
        """A rollout is in place here (a config reload waits for it to end)."""
        return self.splits.busy

    def running(self, route: str, tier: str | None = None) -> Rollout | None:
        return self.splits.running(route, tier)

    async def recorded(self) -> dict[str, Any] | None:
        """``ROUTE/TIER`` → the fleet's record (None: no fleet, or its Redis is unreachable)."""
        found = await self.splits.shared.read() if self.fleet else None
        if found is None:
            return None
        return {target: _readable(raw) for target, raw in found.items()}

    def _refuse_unless_leading(self, what: str) -> None:
        if self.leadership is not None and not self.leadership.leading:
            raise Conflict(
                f"this gateway does not run the fleet's control loops; {what} the rollout on "
                "the one whose /health/ready says fleet.leader: true"
            )

    # -- begin, abort -------------------------------------------------------------------------

    async def begin(self, spec: RolloutSpec, caller: str | None = None) -> Rollout:
        self._refuse_unless_leading("start")
        async with self.splits.lock(spec.target):
            r = await self.splits.place(spec, uuid.uuid4().hex[:12], caller)
            r.leader = self.splits.me
            try:
                await self._decide(
                    r, "start", wait=False, candidate=spec.candidate, steps=list(spec.steps)
                )
            except (Deposed, FailwellError) as exc:
                await self.splits.end(r, State.ABORTED, "not recorded")
                self.splits.all.remove(r)
                if isinstance(exc, FailwellError):
                    raise
                raise Conflict(
                    f"the fleet refused it: a rollout of {spec.target} runs in the fleet, or "
                    "this gateway stopped leading"
                ) from None
        r.task = asyncio.get_running_loop().create_task(self._run(r, resume=False))
        return r

    async def abort(self, route: str, reason: str = "aborted by an operator") -> Rollout:
        self._refuse_unless_leading("abort")
        r = self.running(route)
        if r is None:
            raise InvalidInput(f"route: no rollout running on {route!r}", field="route")
        if r.controlled and r.task is not None:
            r.aborting = reason
            with contextlib.suppress(Exception):
                await finish(r.task)
        # followed here and not taken over yet, or aborted before its control loop first ran
        if r.state is State.RUNNING:
            with contextlib.suppress(Deposed):
                await self._finish(r, State.ABORTED, reason)
        return r

    # -- deciding -----------------------------------------------------------------------------

    async def _decide(
        self,
        r: Rollout,
        action: str,
        *,
        wait: bool = True,
        state: State | None = None,
        **detail: Any,
    ) -> None:
        """Record the decision for the fleet, then audit it. Raises ``Deposed`` when the write is
        refused; while the store is unreachable, tries again (``wait``) or raises."""
        entry = {"action": action, "at": time.time(), "step": r.step, **detail}
        r.decisions.append(entry)
        try:
            await self._write(r.spec.target, encode_record(r.record(state)), wait)
        except BaseException:
            r.decisions.pop()
            raise
        self._audited(r.id, r.spec, r.caller, action, detail)

    async def _write(self, target: str, record: bytes, wait: bool) -> None:
        while (written := await self.splits.shared.write(target, record)) is None:
            if not wait:
                raise FailwellError("the fleet's Redis is unreachable; nothing was changed")
            await self._sleep(RETRY)  # no step without the fleet's record
        if not written:
            raise Deposed(target)

    def _audited(
        self, rollout: str, spec: RolloutSpec, caller: str | None, action: str, detail: Any
    ) -> None:
        audit = {"rollout": rollout, "route": spec.route, "tier": spec.tier}
        audit.update({"candidate": spec.candidate, **detail})
        self._audit(f"rollout.{action}", audit, caller)
        log.info("rollout_decision", action=action, **audit)

    # -- the control loop ---------------------------------------------------------------------

    async def _run(self, r: Rollout, resume: bool) -> None:
        steps = r.spec.steps
        try:
            if resume:
                before, r.leader = r.leader, self.splits.me
                await self._decide(r, "adopted", previous=before, at_step=r.step)
            for number in range(max(r.step, 1), len(steps) + 1):
                if not (resume and number == r.step):
                    r.step, r.weight = number, 0.0 if r.spec.shadow else steps[number - 1] / 100
                    await self._decide(r, "step", weight=steps[number - 1], shadow=r.spec.shadow)
                self.splits.apply(r)
                verdict = await self._watch(r)
                if verdict.outcome is Outcome.PASS:
                    verdict = await self._canary(r)
                if verdict.outcome is not Outcome.PASS:
                    await self._finish(r, State.ROLLED_BACK, verdict.reason)
                    return
                stable, candidate = r.judged or (r.split.stable_stats, r.split.candidate_stats)
                summary = candidate.summary()
                await self._decide(r, "step_passed", **summary, stable_requests=stable.requests)
            await self._finish(r, State.PROMOTED, "every step held")
        except Deposed:
            log.warning("rollout_deposed", rollout=r.id, instance=self.splits.me)
        except asyncio.CancelledError:
            if r.aborting is not None or not self.fleet:  # a fleet's next controller goes on
                with contextlib.suppress(Deposed):
                    await self._finish(r, State.ABORTED, r.aborting or "aborted")
            raise
        except Exception as exc:  # a bug must not leave the split in place
            log.error("rollout_failed", exc_info=exc)
            with contextlib.suppress(Deposed):
                await self._finish(r, State.ROLLED_BACK, f"controller error: {exc}")

    async def _watch(self, r: Rollout) -> Verdict:
        clock, shared = r.split.clock, self.splits.shared
        started = clock.now()
        ends, gives_up = started + r.spec.step_time, started + r.spec.step_time * WAIT_FOR_TRAFFIC
        while True:
            await self._sleep(shared.tick)
            now = clock.now()
            counts = await shared.counts(r.key)
            if counts is None:
                continue  # the fleet's counts are unreachable: no verdict without them
            r.judged = arm_stats(counts[0]), arm_stats(counts[1])
            verdict = judge(*r.judged, r.spec.gates, now >= ends)
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
        """Decide the end (recorded, then the split ends here; every other process ends it on
        the record). A promotion moves the alias before the record says so, so a registry
        watcher that reads it meanwhile swaps to the candidate too, never back."""
        if r.closing or r.state is not State.RUNNING:
            return
        r.reason = reason
        if state is State.PROMOTED:
            await self._move_alias(r)
        r.finished = time.time()
        seconds = round(r.finished - r.started, 3)
        await self._decide(r, state.value, state=state, reason=r.reason, seconds=seconds)
        self.outcomes.labels(r.spec.route, state.value).inc()
        await self.splits.end(r, state, r.reason)

    async def _move_alias(self, r: Rollout) -> None:
        if r.model is None or r.version is None:
            return
        alias = r.model.ref.split("@")[1]
        if alias[0] == "v" and alias[1:].isdigit():
            return  # served by version, not by alias
        try:
            await asyncio.to_thread(
                r.model.registry.set_alias, r.version.name, alias, r.version.version
            )
        except FailwellError as exc:
            r.reason += f"; moving {r.model.ref} failed: {exc.message}"

    # -- adopting what no controller drives ---------------------------------------------------

    async def start(self) -> None:
        """Where the fleet's lease is held: adopt running records, now and every second."""
        if self.fleet:
            self._adopting = asyncio.get_running_loop().create_task(self._adopt())

    async def _adopt(self) -> None:
        unreadable: set[bytes] = set()
        while True:
            for raw in (await self.splits.shared.read() or {}).values():
                try:
                    record = decode_record(raw)
                except ValueError as exc:
                    if raw not in unreadable:
                        unreadable.add(raw)
                        log.warning("rollout_record_unreadable", error=str(exc))
                    continue
                if record.state is State.RUNNING:
                    await self._take_over(record)
            await self._sleep(ADOPT_EVERY)

    async def _take_over(self, record: Record) -> None:
        async with self.splits.lock(record.spec.target):
            r = self.splits.find(record.id)
            if r is not None and (r.controlled or r.closing):
                return
            try:
                r = await self.splits.match(record)
            except FailwellError as exc:
                await self._abandon(record, f"the new controller could not place it: {exc.message}")
                return
            r.task = asyncio.get_running_loop().create_task(self._run(r, resume=True))

    async def _abandon(self, record: Record, reason: str) -> None:
        """End a record this process cannot carry on: aborted, saying why."""
        record.state, record.reason, record.finished = State.ABORTED, reason, time.time()
        record.leader = self.splits.me
        detail = {"reason": reason, "seconds": round(record.finished - record.started, 3)}
        record.decisions.append({"action": "aborted", "at": time.time(), "step": record.step})
        record.decisions[-1].update(detail)
        with contextlib.suppress(Deposed):
            await self._write(record.spec.target, encode_record(record), wait=True)
            self.outcomes.labels(record.spec.route, State.ABORTED.value).inc()
            self._audited(record.id, record.spec, record.caller, State.ABORTED.value, detail)

    async def stop(self) -> None:
        """Stop controlling: alone, a rollout ends as aborted; in a fleet it stays in place,
        following its record, for the next controller to carry on."""
        if self._adopting is not None:
            await finish(self._adopting)
            self._adopting = None
        tasks = [r.task for r in self.all if r.task is not None and not r.task.done()]
        for task in tasks:
            with contextlib.suppress(Exception):
                await finish(task, timeout=5)


def _readable(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {"unreadable": raw.decode(errors="replace")[:200]}
