"""The traffic split a rollout puts in place of one model tier: stable and candidate side by
side, each answer measured per arm.

With weight w a request goes to the candidate with probability w. A candidate that fails or
runs out of its share of the budget (half) is not the caller's problem: the same request then
goes to stable with the time left. In shadow mode stable answers every request and a copy goes
to the candidate in the background; its answer is measured and thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from copy import copy as shallow
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.models import TierKind
from failwell.contracts import Request
from failwell.errors import FailwellError
from failwell.routing.tiers import Tier, TierAnswer

MAX_SAMPLES = 20_000
MAX_SHADOW_IN_FLIGHT = 64


def numbers(outputs: Any) -> Iterator[float]:
    """Every number in an answer (nested dicts and lists), for the output distribution."""
    if isinstance(outputs, bool):
        return
    if isinstance(outputs, int | float):
        yield float(outputs)
    elif isinstance(outputs, dict):
        for value in outputs.values():
            yield from numbers(value)
    elif isinstance(outputs, list | tuple):
        for value in outputs:
            yield from numbers(value)


@dataclass
class ArmStats:
    """One arm's answers during the current step."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    outputs: list[float] = field(default_factory=list)
    last_error: str | None = None

    def ok(self, latency: float, outputs: Any) -> None:
        self.requests += 1
        if len(self.latencies) < MAX_SAMPLES:
            self.latencies.append(latency)
            self.outputs.extend(numbers(outputs))

    def failed(self, latency: float, error: str) -> None:
        self.requests += 1
        self.errors += 1
        self.last_error = error
        if len(self.latencies) < MAX_SAMPLES:
            self.latencies.append(latency)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99)) if self.latencies else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p99_ms": round(self.p99 * 1000, 2),
            "last_error": self.last_error,
        }


class SplitTier:
    """Stands in for a model tier while a rollout runs; same name, quality and reserve."""

    kind = TierKind.MODEL

    def __init__(
        self,
        stable: Tier,
        candidate: Tier,
        shadow: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.stable, self.candidate, self.shadow = stable, candidate, shadow
        self.name, self.quality, self.reserve = stable.name, stable.quality, stable.reserve
        self.supports = stable.supports & candidate.supports
        self.weight = 0.0
        self.clock = clock
        self._random = rng or random.Random()
        self.stable_stats, self.candidate_stats = ArmStats(), ArmStats()
        self._shadows: set[asyncio.Task[None]] = set()

    def reset(self) -> None:
        """Start a new measuring window (a new step)."""
        self.stable_stats, self.candidate_stats = ArmStats(), ArmStats()

    def ready(self) -> bool:
        return self.stable.ready() or (self.weight > 0 and self.candidate.ready())

    async def _measure(
        self, tier: Tier, stats: ArmStats, request: Request, budget: float
    ) -> TierAnswer:
        started = self.clock.now()
        try:
            got = await tier.answer(request, budget)
        except FailwellError as exc:
            stats.failed(self.clock.now() - started, exc.kind)
            raise
        stats.ok(self.clock.now() - started, got.outputs)
        return got

    async def answer(self, request: Request, budget: float) -> TierAnswer:
        if self.shadow:
            if self.candidate.ready() and len(self._shadows) < MAX_SHADOW_IN_FLIGHT:
                task = asyncio.get_running_loop().create_task(self._shadow(request, budget))
                self._shadows.add(task)
                task.add_done_callback(self._shadows.discard)
            return await self._measure(self.stable, self.stable_stats, request, budget)
        if self.weight > 0 and self._random.random() < self.weight and self.candidate.ready():
            started = self.clock.now()
            try:
                return await self._measure(
                    self.candidate, self.candidate_stats, request, budget / 2
                )
            except FailwellError:
                budget -= self.clock.now() - started  # stable answers with the time left
        return await self._measure(self.stable, self.stable_stats, request, budget)

    async def _shadow(self, request: Request, budget: float) -> None:
        # the same request (schema and tensors included), labelled as a shadow
        copy = msgspec.structs.replace(request, inputs=shallow(request.inputs), front_end="shadow")
        with contextlib.suppress(FailwellError):  # measured; never reaches the caller
            await self._measure(self.candidate, self.candidate_stats, copy, budget)

    async def drain(self) -> None:
        """Wait for shadow copies still running."""
        if self._shadows:
            await asyncio.wait(set(self._shadows), timeout=5)
