"""A training job file (``failwell train JOB.yaml``): which model, which entry point, which
data, how often to checkpoint. Relative paths mean beside the job file."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from failwell.config.base import Frozen
from failwell.config.units import Duration

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class CheckpointPolicy(Frozen):
    every_steps: int = Field(100, ge=1, description="Checkpoint after this many steps...")
    every: Duration = Field(30.0, gt=0, description="...or this much time, whichever first.")


class GateConfig(Frozen):
    metric: str = Field(description="A metric the entry point records (e.g. holdout_auc).")
    higher_is_better: bool = Field(True, description="False for errors (mae, loss).")
    tolerance: float = Field(
        0.0, ge=0, description="How much worse than the production version still passes."
    )
    minimum: float | None = Field(
        None, description="The value it must reach whatever production does (optional)."
    )
    max_psi: float = Field(
        0.25,
        gt=0,
        description="The held-out inputs may drift this far (PSI, per feature) from the "
        "training data's reference.",
    )
    min_holdout: int = Field(
        50, ge=1, description="Fewer held-out rows than this skip the drift check (too few)."
    )


class FromLog(Frozen):
    """Training rows made of logged traffic: each answered request's inputs (and outputs)
    joined by request id with the label its feedback gave (``POST /v1/feedback/ROUTE``)."""

    route: str = Field(min_length=1, description="The route whose logged requests are read.")
    since: Duration | None = Field(
        None, gt=0, description="Only requests logged this recently (e.g. 6h); all when unset."
    )
    records: int | None = Field(
        None, ge=1, description="At most this many labelled rows, the newest; all when unset."
    )
    min_rows: int = Field(1, ge=1, description="Fewer labelled rows than this fail the job.")


class TrainingJobConfig(Frozen):
    model: str = Field(description="The registry model the job trains a version of.")
    entry: str = Field(description="module:function called with the job (failwell.training.Job).")
    data: str | None = Field(
        None, description="Training data (the entry point reads it); beside the job file."
    )
    from_log: FromLog | None = Field(
        None, description="Instead of data: logged requests joined with their feedback labels."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Passed to the entry point.")
    seed: int = Field(0, description="Seed of every random choice: a resumed run ends the same.")
    checkpoint: CheckpointPolicy = Field(
        default_factory=CheckpointPolicy, description="How often progress is checkpointed."
    )
    gate: GateConfig | None = Field(
        None, description="The candidate must match the production version on this metric."
    )

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        if not _IMPORT_PATH.match(value):
            raise ValueError("expected module:function")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TrainingJobConfig:
        if (self.data is None) == (self.from_log is None):
            raise ValueError("give exactly one of data (a path) and from_log (logged traffic)")
        return self
