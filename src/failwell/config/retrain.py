"""Config of a route's retraining loop (``routes.NAME.retrain``): which signals start a
training job, how often at most, and the canary a candidate that passes its gate goes through."""

from __future__ import annotations

import enum

from pydantic import Field, field_validator

from failwell.config.base import Frozen
from failwell.config.units import Duration


class Signal(enum.StrEnum):
    DRIFT = "drift"
    QUALITY = "quality"
    FRESHNESS = "freshness"
    SCHEDULE = "schedule"


class RetrainCanary(Frozen):
    steps: tuple[int, ...] = Field(
        (10, 50, 100), description="Rising shares (percent) of the tier's traffic per step."
    )
    step_time: Duration = Field(60.0, gt=0, description="How long each step is watched.")
    min_requests: int = Field(20, ge=1, description="Candidate answers a step needs to pass.")
    max_error_increase: float = Field(
        0.02, ge=0, le=1, description="Candidate error rate may exceed stable's by this much."
    )
    max_p99_ratio: float = Field(1.5, gt=0, description="Candidate p99 may be this times stable's.")
    max_distance: float = Field(
        0.3,
        gt=0,
        le=1,
        description="KS distance allowed between the candidate's and stable's outputs (a "
        "retrained model answers differently by design: loosen it when drift is the trigger).",
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or list(value) != sorted(value) or not all(0 < p <= 100 for p in value):
            raise ValueError("expected rising percentages in 1..100")
        return value


class RetrainConfig(Frozen):
    job: str = Field(
        description="The training job file (failwell train); a relative path is beside the "
        "config file. Its model must be the one the tier serves (model_ref)."
    )
    tier: str | None = Field(
        None, description="The model tier whose candidate is canaried (default: the first)."
    )
    triggers: tuple[Signal, ...] = Field(
        (Signal.DRIFT,),
        description="What starts a job: drift (the route's drift alarm), quality (live "
        "quality below its objective), freshness (a freshness objective missed), schedule.",
    )
    schedule: Duration | None = Field(
        None, description="With the schedule trigger: a job this long after the last one."
    )
    every: Duration = Field(5.0, gt=0, description="How often the signals are looked at.")
    cooldown: Duration = Field(
        3600.0, ge=0, description="No new job this soon after the last one started."
    )
    max_per_day: int = Field(4, ge=1, description="At most this many jobs in any 24 hours.")
    timeout: Duration = Field(3600.0, gt=0, description="A job running longer is stopped.")
    restarts: int = Field(
        2, ge=0, description="A job that dies is run again this often (it resumes)."
    )
    canary: RetrainCanary = Field(
        default_factory=RetrainCanary, description="The rollout of a candidate that passed."
    )

    @field_validator("triggers")
    @classmethod
    def _triggers(cls, value: tuple[Signal, ...]) -> tuple[Signal, ...]:
        if not value:
            raise ValueError("name at least one of drift, quality, freshness, schedule")
        return value
