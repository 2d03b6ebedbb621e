"""Rollouts shared by the fleet: one record per route and tier that every process follows,
each step's answers counted by every process and added up in Redis, and the fence on the
controller's writes.

    {failwell:NAME}:rollouts               hash: ROUTE/TIER → the rollout's record (JSON)
    {failwell:NAME}:rollout:ID:STEP        hash: s.n, s.e, s.last, c.n, c.e, c.last (answers,
                                           errors and the last error of stable s, candidate c)
    {failwell:NAME}:rollout:ID:STEP:c.lat  list: the step's first latencies (seconds) of the
                                           candidate; likewise s.lat, and s.out, c.out (the
                                           numbers in the answers); at most MAX_SAMPLES each
    {failwell:NAME}:claimed:NAME           string: set by the one process that took NAME
                                           (``claim``: e.g. recording a rollout's outcome once)
    {failwell:NAME}:events                 ``rollout_ask`` and ``rollout_reply`` messages: an
                                           admin call a process passes to the lease's holder
                                           (``ask``), and its reply

A controller's write is one Lua script behind the lease's fence (``Lease.script``): written
only while the writer holds the lease and only when the record moves forward (the same rollout
with more decisions and not ended, or a tier where none runs), and published on the fleet's
channel in the same step, so every process applies it. On (re)connect each process reads every
record, and puts back those of the rollouts running here that the hash lacks (Redis came back
empty), for the next controller to carry on.

Counts never touch Redis on the request path: every ``FLUSH`` seconds a task adds what each
local arm counted since the last flush (HINCRBY; RPUSH of the new samples until a list is
full), one pipeline for all; while Redis is down they wait here. The controller reads a step's
counts incrementally: the lists from where it read last.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from redis.exceptions import RedisError

from failwell.background import Background
from failwell.contracts import CallAnswer
from failwell.fleet.lease import Lease
from failwell.fleet.link import FleetLink
from failwell.observe.logging import log

KIND = "rollout"
ASK, REPLY = "rollout_ask", "rollout_reply"
ASK_TIMEOUT = 15.0  # loading a candidate on the leader may take seconds
FLUSH = 0.25
MAX_SAMPLES = 20_000
KEEP_MS = 86_400_000  # a step's counts expire a day after their last change
ARMS = ("s", "c")  # stable, candidate
LISTS = ("s.lat", "s.out", "c.lat", "c.out")
_encode = msgspec.json.Encoder().encode

# KEYS[2] the records; ARGV[3] field, ARGV[4] record, ARGV[5] channel, ARGV[6] message
_WRITE = """
local new = cjson.decode(ARGV[4])
local stored = redis.call('HGET', KEYS[2], ARGV[3])
if stored then
  local readable, old = pcall(cjson.decode, stored)
  if readable then
    if old.id == new.id then
      if old.state ~= 'running' or #new.decisions <= #old.decisions then return -1 end
    elseif old.state == 'running' then
      return -1
    end
  end
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""


class Tally(Protocol):
    """What is read of one arm's counts in this process (the rollout's ``ArmStats``)."""

    @property
    def requests(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def latencies(self) -> list[float]: ...

    @property
    def outputs(self) -> list[float]: ...

    @property
    def last_error(self) -> str | None: ...


@dataclass
class Gathered:
    """One arm's counts of the whole fleet in one step, as read so far."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    outputs: list[float] = field(default_factory=list)
    last_error: str | None = None


@dataclass
class _Counted:
    """A step this process counts for: its arms and what has been added to Redis."""

    key: str
    arms: tuple[Tally, Tally]
    sent: list[list[int]] = field(default_factory=lambda: [[0, 0, 0, 0], [0, 0, 0, 0]])
    full: set[str] = field(default_factory=set)  # lists that hold MAX_SAMPLES


class RolloutSync:
    """The fleet's ``Shared`` for the rollout controller (a ``Service``: the flushing task)."""

    tick = FLUSH

    def __init__(self, link: FleetLink, lease: Lease) -> None:
        self.link, self.lease = link, lease
        self.hash = link.key("rollouts")
        self._write = lease.script(_WRITE)
        self._apply: Callable[[bytes], None] | None = None
        self._held: Callable[[], dict[str, bytes]] = dict
        self._steps: dict[str, _Counted] = {}  # target → the step counted now
        self._replaced: list[_Counted] = []  # steps counted before: flushed once more
        self._read: dict[str, tuple[Gathered, Gathered, list[int]]] = {}  # key → sums, cursors
        self._task = Background("fleet-rollouts")
        self._answer: CallAnswer | None = None
        self._asked: dict[str, asyncio.Future[dict[str, Any]]] = {}  # question id → reply
        self._answering: set[asyncio.Task[None]] = set()
        link.subscribe(KIND, self._message)
        link.subscribe(ASK, self._question)
        link.subscribe(REPLY, self._reply)
        link.on_connect(self._reconcile)

    # -- records --------------------------------------------------------------------------

    async def write(self, field: str, record: bytes) -> bool | None:
        message = self.link.envelope(KIND, {"r": msgspec.Raw(record)})
        args = [field, record, self.link.channel, message]
        done = await self.lease.fenced(self._write, [self.hash], args)
        return None if done is None else done > 0

    async def read(self) -> dict[str, bytes] | None:
        try:
            found = await self.link.redis.hgetall(self.hash)
        except (RedisError, OSError):
            return None
        return {name.decode(): raw for name, raw in found.items()}

    def follow(self, apply: Callable[[bytes], None], held: Callable[[], dict[str, bytes]]) -> None:
        self._apply, self._held = apply, held

    async def claim(self, name: str) -> bool | None:
        try:
            taken = await self.link.redis.set(
                self.link.key(f"claimed:{name}"), self.link.me, nx=True, px=KEEP_MS
            )
        except (RedisError, OSError):
            return None
        return bool(taken)

    # -- admin calls passed to the leader ------------------------------------------------

    async def ask(
        self, question: dict[str, Any], timeout: float = ASK_TIMEOUT
    ) -> dict[str, Any] | None:
        if not self.link.up:
            return None
        qid = uuid.uuid4().hex
        reply = self._asked[qid] = asyncio.get_running_loop().create_future()
        self.link.publish(ASK, {"q": question, "id": qid})
        try:
            return await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            return None
        finally:
            del self._asked[qid]

    def answer_with(self, answer: CallAnswer) -> None:
        self._answer = answer

    def _question(self, message: dict[str, Any]) -> None:
        if self._answer is None or not self.lease.leading:
            return  # the lease's holder answers
        asker, qid, question = str(message["i"]), str(message["id"]), dict(message["q"])
        task = asyncio.get_running_loop().create_task(self._answered(asker, qid, question))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answered(self, asker: str, qid: str, question: dict[str, Any]) -> None:
        assert self._answer is not None
        reply = await self._answer(question)
        self.link.publish(REPLY, {"to": asker, "id": qid, "a": reply})

    def _reply(self, message: dict[str, Any]) -> None:
        if message.get("to") != self.link.me:
            return
        waiting = self._asked.get(str(message["id"]))
        if waiting is not None and not waiting.done():
            waiting.set_result(dict(message["a"]))

    def _message(self, message: dict[str, Any]) -> None:
        if self._apply is not None:
            self._apply(_encode(message["r"]))

    async def _reconcile(self, redis: Any) -> None:
        self._read.clear()  # a Redis that came back may have lost what was read from it
        stored = await redis.hgetall(self.hash)
        for target, raw in self._held().items():
            if target.encode() not in stored:
                await redis.hsetnx(self.hash, target, raw)
        if self._apply is not None:
            for raw in stored.values():
                self._apply(raw)

    # -- counts ---------------------------------------------------------------------------

    def count(self, field: str, key: str, stable: Tally, candidate: Tally) -> None:
        old = self._steps.get(field)
        if old is not None and old.key != key:
            self._replaced.append(old)
        if old is None or old.key != key:
            self._steps[field] = _Counted(key, (stable, candidate))

    def _base(self, key: str) -> str:
        return self.link.key(f"rollout:{key}")

    def _add(
        self, pipe: Any, step: _Counted, pushes: list[tuple[_Counted, str, int]]
    ) -> list[list[int]]:
        """Queue what ``step``'s arms counted since the last flush; the totals it sends."""
        base, sent = self._base(step.key), list[list[int]]()
        for name, arm, before in zip(ARMS, step.arms, step.sent, strict=True):
            n, e, lat, out = arm.requests, arm.errors, arm.latencies, arm.outputs
            if n > before[0]:
                pipe.hincrby(base, f"{name}.n", n - before[0])
            if e > before[1]:
                pipe.hincrby(base, f"{name}.e", e - before[1])
                pipe.hset(base, f"{name}.last", arm.last_error or "")
            for suffix, values in ((".lat", lat[before[2] :]), (".out", out[before[3] :])):
                listed = name + suffix
                if values and listed not in step.full:
                    pushes.append((step, listed, len(pipe)))  # the RPUSH reply's place
                    pipe.rpush(f"{base}:{listed}", *values)
                    pipe.ltrim(f"{base}:{listed}", 0, MAX_SAMPLES - 1)
                    pipe.pexpire(f"{base}:{listed}", KEEP_MS)
            sent.append([n, e, len(lat), len(out)])
        if sent != step.sent:
            pipe.pexpire(base, KEEP_MS)
        return sent

    async def flush(self) -> None:
        """Add what every step counted here since the last flush to the fleet's counts."""
        steps = [*self._replaced, *self._steps.values()]
        if not steps:
            return
        pushes: list[tuple[_Counted, str, int]] = []
        async with self.link.redis.pipeline(transaction=False) as pipe:
            totals = [self._add(pipe, step, pushes) for step in steps]
            if not len(pipe):
                self._replaced = []
                return
            replies = await pipe.execute()
        for step, sent in zip(steps, totals, strict=True):
            step.sent = sent
        for step, listed, index in pushes:
            if int(replies[index]) >= MAX_SAMPLES:  # the list's length after the push
                step.full.add(listed)
        self._replaced = []

    async def counts(self, key: str) -> tuple[Gathered, Gathered] | None:
        read = self._read.pop(key, None)
        stable, candidate, cursors = read or (Gathered(), Gathered(), [0] * len(LISTS))
        base = self._base(key)
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(base)
                for listed, cursor in zip(LISTS, cursors, strict=True):
                    pipe.lrange(f"{base}:{listed}", cursor, -1)
                found, *lists = await pipe.execute()
        except (RedisError, OSError):
            return None
        sums = {name.decode(): value for name, value in found.items()}
        for name, arm in zip(ARMS, (stable, candidate), strict=True):
            arm.requests = int(sums.get(f"{name}.n", 0))
            arm.errors = int(sums.get(f"{name}.e", 0))
            last = sums.get(f"{name}.last")
            arm.last_error = last.decode() if last else None
        for i, (listed, values) in enumerate(zip(LISTS, lists, strict=True)):
            arm = stable if listed[0] == "s" else candidate
            (arm.latencies if listed.endswith("lat") else arm.outputs).extend(map(float, values))
            cursors[i] += len(values)
        self._read[key] = (stable, candidate, cursors)
        while len(self._read) > 8:  # the steps read lately
            del self._read[next(iter(self._read))]
        return stable, candidate

    # -- the flushing task ----------------------------------------------------------------

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        if self.link.up:
            with contextlib.suppress(RedisError, OSError):
                await self.flush()  # the last counts of a process that stops

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(FLUSH)
            if not self.link.up:
                continue  # the counts wait here for Redis
            try:
                await self.flush()
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("fleet_rollout_flush_failed", error=repr(exc))
                failing = True
