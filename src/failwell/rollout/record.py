"""A rollout as the fleet knows it, and where that is kept.

The ``Record`` of a rollout is enough for any process to put its split in place (the spec, the
step, the weight) and for the next controller to carry on (the decisions so far, the state).
A record only moves forward: every write adds a decision, and nothing follows the end.

``Shared`` names what the controller needs of the place records and counts are kept: the
fleet's Redis (``fleet/rollouts.py``, passed in by the composition root) or, for a gateway
alone, ``Alone``: every write succeeds and the counts a step is judged on are this process's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from failwell.contracts import CallAnswer
from failwell.rollout.judge import Gates
from failwell.rollout.split import ArmStats


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
    # who started it and why, carried in the record as given (the retraining loop's
    # ``{"loop": "retrain", "token": ..., ...}``: how its next holder learns the outcome)
    origin: dict[str, Any] | None = None

    @property
    def target(self) -> str:
        """The rollout's place in the fleet's records: one running per route and tier."""
        return f"{self.route}/{self.tier}"


class Record(msgspec.Struct, kw_only=True):
    id: str
    route: str
    tier: str
    candidate: str
    steps: tuple[int, ...]
    step_time: float
    shadow: bool
    gates: Gates
    canary_inputs: tuple[dict[str, Any], ...] = ()
    origin: dict[str, Any] | None = None
    caller: str | None
    state: State
    step: int  # 1-based; 0 before the first step
    weight: float
    started: float  # wall clock
    finished: float | None = None
    reason: str = ""
    leader: str = ""  # the instance whose controller wrote it
    decisions: list[dict[str, Any]] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, spec: RolloutSpec, **state: Any) -> Record:
        return cls(
            route=spec.route,
            tier=spec.tier,
            candidate=spec.candidate,
            steps=spec.steps,
            step_time=spec.step_time,
            shadow=spec.shadow,
            gates=spec.gates,
            canary_inputs=spec.canary_inputs,
            origin=spec.origin,
            **state,
        )

    @property
    def spec(self) -> RolloutSpec:
        return RolloutSpec(
            self.route,
            self.tier,
            self.candidate,
            self.steps,
            self.step_time,
            self.shadow,
            self.gates,
            self.canary_inputs,
            self.origin,
        )


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(Record).decode  # raises a ValueError (msgspec.DecodeError)


class Tally(Protocol):
    """One arm's counts in one step (``ArmStats`` here, the fleet's sums in Redis)."""

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


def arm_stats(tally: Tally) -> ArmStats:
    """``tally`` as the judge reads it."""
    if isinstance(tally, ArmStats):
        return tally
    return ArmStats(tally.requests, tally.errors, tally.latencies, tally.outputs, tally.last_error)


class Shared(Protocol):
    """Where a fleet keeps its rollouts: records (fenced) and each step's counts."""

    tick: float  # seconds between two reads of the counts

    async def write(self, field: str, record: bytes) -> bool | None:
        """Store ``record`` and tell the other processes, only while this process holds the
        fleet's lease and the record moves forward: True written, False refused, None when
        the store is unreachable."""
        ...

    async def read(self) -> dict[str, bytes] | None:
        """Every record by field (None: unreachable)."""
        ...

    def follow(self, apply: Callable[[bytes], None], held: Callable[[], dict[str, bytes]]) -> None:
        """Call ``apply`` with each record another process writes, and with every record
        read again after a reconnection; ``held`` gives the records of the rollouts running
        here, put back then if the store lost them."""
        ...

    def count(self, field: str, key: str, stable: Tally, candidate: Tally) -> None:
        """Add these arms' counts to the step ``key``'s (off the request path), from now on
        for ``field``."""
        ...

    async def counts(self, key: str) -> tuple[Tally, Tally] | None:
        """The counts of step ``key`` (stable, candidate) of every process (None: unknown)."""
        ...

    async def claim(self, name: str) -> bool | None:
        """Take ``name`` once for the fleet (e.g. the recording of a rollout's outcome): True
        for the first process that takes it, False for every later one (for a day), None
        while the store is unreachable."""
        ...

    async def ask(self, question: dict[str, Any]) -> dict[str, Any] | None:
        """Pass ``question`` (an admin call) to the process leading the fleet and wait for its
        reply (None: the store is unreachable, or no reply came in time)."""
        ...

    def answer_with(self, answer: CallAnswer) -> None:
        """While this process leads, answer what the others ``ask`` with ``answer``."""
        ...


class Alone:
    """The ``Shared`` of a gateway with no fleet: nothing to tell; its counts are its own."""

    tick = 0.05

    def __init__(self) -> None:
        self._steps: dict[str, tuple[str, Tally, Tally]] = {}  # field → (key, arms)
        self._claimed: set[str] = set()

    async def write(self, field: str, record: bytes) -> bool | None:
        return True

    async def read(self) -> dict[str, bytes] | None:
        return {}

    def follow(self, apply: Callable[[bytes], None], held: Callable[[], dict[str, bytes]]) -> None:
        """Nobody else writes."""

    def count(self, field: str, key: str, stable: Tally, candidate: Tally) -> None:
        self._steps[field] = (key, stable, candidate)

    async def counts(self, key: str) -> tuple[Tally, Tally] | None:
        for step, stable, candidate in self._steps.values():
            if step == key:
                return stable, candidate
        return None

    async def claim(self, name: str) -> bool | None:
        taken = name not in self._claimed
        self._claimed.add(name)
        return taken

    async def ask(self, question: dict[str, Any]) -> dict[str, Any] | None:
        return None  # alone, this process leads: nothing is passed on

    def answer_with(self, answer: CallAnswer) -> None:
        """Nobody else asks."""
