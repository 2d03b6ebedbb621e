"""Config of the drift monitor of one route (``routes.NAME.drift``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from failwell.config.units import Duration


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftThreshold(Frozen):
    psi: float = Field(0.2, gt=0, description="Alarm when the window's PSI is above this.")
    p_value: float = Field(
        0.001, gt=0, lt=1, description="Alarm when the KS or chi-square p-value is below this."
    )


class DriftConfig(Frozen):
    reference: str = Field(
        description="JSON reference statistics (failwell drift reference makes one); a relative "
        "path is beside the config file."
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
