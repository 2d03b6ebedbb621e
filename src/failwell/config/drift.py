"""Config of what watches one route's model: its drift (``routes.NAME.drift``) and its live
quality from delayed ground truth (``routes.NAME.quality``)."""

from __future__ import annotations

import enum

from pydantic import Field

from failwell.config.base import Frozen
from failwell.config.units import Duration


class DriftThreshold(Frozen):
    psi: float = Field(0.2, gt=0, description="Alarm when the window's PSI is above this.")
    p_value: float = Field(
        0.001, gt=0, lt=1, description="Alarm when the KS or chi-square p-value is below this."
    )


class DriftConfig(Frozen):
    reference: str | None = Field(
        None,
        description="JSON reference statistics (failwell drift reference makes one); a relative "
        "path is beside the config file. None: the reference stored with the registry version "
        "the route's model tier serves (model_ref), followed when that version changes.",
    )
    window: int = Field(1000, ge=10, description="Most recent sampled requests compared.")
    min_samples: int = Field(
        200, ge=10, description="A feature with fewer values in the window is not judged."
    )
    every: Duration = Field(10.0, gt=0, description="How often the window is compared.")
    sample: float = Field(1.0, gt=0, le=1, description="Share of answered requests sampled.")
    threshold: DriftThreshold = Field(
        default_factory=DriftThreshold, description="Alarm thresholds of every feature."
    )
    features: dict[str, DriftThreshold] = Field(
        default_factory=dict, description="Per-feature thresholds (override 'threshold')."
    )


class QualityMetric(enum.StrEnum):
    ACCURACY = "accuracy"
    MAE = "mae"
    AUC = "auc"


class QualityConfig(Frozen):
    metric: QualityMetric = Field(
        description="accuracy (label equals the prediction), mae (mean absolute error) or auc "
        "(binary labels against a score)."
    )
    output: str | None = Field(
        None,
        description="The key of the answer's outputs that is the prediction (or the score); "
        "none: the outputs themselves.",
    )
    objective: float | None = Field(
        None, description="Alert when the live metric is worse than this (mae: above; else below)."
    )
    window: int = Field(1000, ge=10, description="Most recent labelled answers the metric covers.")
    min_labels: int = Field(50, ge=1, description="Labels needed before the metric is judged.")
    max_age: Duration = Field(
        86400.0,
        gt=0,
        description="How long an answer waits for its label (then forgotten); with a fleet, "
        "also how long Redis keeps it.",
    )
    remember: int = Field(
        100_000,
        ge=100,
        description="Answers kept waiting for labels (the oldest go first): per process, and "
        "with a fleet also in Redis for the whole fleet.",
    )
