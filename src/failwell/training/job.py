"""What a training entry point gets: its data, seed and arguments, where to write the model,
and the two calls that make it resumable: ``resume()`` (the last checkpoint, if a previous run
of the same job left one) and ``step(...)`` (report progress; the job checkpoints when its
policy says so, asking the entry point for its state only then).

An entry point is ``def train(job: Job) -> None``: it writes the model into ``job.out`` and may
``job.record(metric=value)`` figures that go into the version's metadata. Determinism is the
entry point's side of the contract: given ``job.seed``, a run resumed from step N must take the
same steps after N as an uninterrupted one (e.g. SGD over batches in a seeded order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failwell.config.training import TrainingJobConfig
from failwell.training.checkpoints import Checkpoint, Checkpoints

Progress = Callable[[int, int | None], None]


@dataclass
class Job:
    config: TrainingJobConfig
    data: Path
    out: Path
    checkpoints: Checkpoints
    progress: Progress = lambda step, total: None
    checkpointed: Callable[[int], None] = lambda step: None  # after each checkpoint is saved
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None
    saved: int = 0  # checkpoints written by this run
    holdout: tuple[list[dict[str, Any]], list[Any]] | None = None  # see ``held_out``
    _last_step: int = 0
    _last_time: float = field(default_factory=time.monotonic)

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def args(self) -> dict[str, Any]:
        return self.config.args

    def resume(self) -> Checkpoint | None:
        """The last checkpoint of this job, or None for a fresh start."""
        found = self.checkpoints.latest()
        if found is not None:
            self.resumed_from = self._last_step = found.step
        return found

    def step(self, step: int, total: int | None, state: Callable[[], bytes]) -> None:
        """``step`` of ``total`` is done; checkpoint ``state()`` when the policy says so."""
        self.progress(step, total)
        policy = self.config.checkpoint
        now = time.monotonic()
        if step - self._last_step >= policy.every_steps or now - self._last_time >= policy.every:
            self.checkpoints.save(step, state())
            self.saved += 1
            self.checkpointed(step)
            self._last_step, self._last_time = step, now

    def held_out(self, inputs: list[dict[str, Any]], outputs: list[Any]) -> None:
        """The held-out rows' inputs and the trained model's outputs on them (as it serves
        them): the gate checks them against the route's schema and the training data's
        reference, and the outputs' statistics join the version's reference."""
        self.holdout = (list(inputs), list(outputs))

    def record(self, **values: Any) -> None:
        """Figures of the trained model (held-out metrics...) for the version's metadata."""
        self.metrics.update(values)
