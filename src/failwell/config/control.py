"""The ``control`` section: fault injection, feature flags and the in-gateway canary drill."""

from __future__ import annotations

from pydantic import Field, model_validator

from failwell.config.base import Frozen
from failwell.config.units import Duration


class CanaryDrillConfig(Frozen):
    enabled: bool = Field(False, description="Run the scheduled canary drill (off by default).")
    route: str | None = Field(None, description="Route drilled; required when enabled.")
    tier: str | None = Field(
        None, description="Tier skipped for the canary share; defaults to the route's first tier."
    )
    share: float = Field(
        0.01, gt=0, le=0.5, description="Share of the route's requests that take part (0-0.5]."
    )
    every: Duration = Field(3600.0, description="Time from the start of one drill to the next.")
    duration: Duration = Field(60.0, description="How long each drill lasts.")
    first_after: Duration = Field(60.0, description="Wait after start-up before the first drill.")
    min_answered: float = Field(
        1.0, ge=0, le=1, description="Share of canary requests that must be answered to pass."
    )

    @model_validator(mode="after")
    def _route_when_enabled(self) -> CanaryDrillConfig:
        if self.enabled and not self.route:
            raise ValueError("route is required when the canary drill is enabled")
        if self.duration >= self.every:
            raise ValueError("duration must be shorter than every")
        return self


class ControlConfig(Frozen):
    faults: bool = Field(
        True, description="Allow fault injection through /admin/faults (no cost while none is set)."
    )
    flags_path: str = Field(
        ".failwell/flags.json",
        description="JSON file where tier and backend flags persist across restarts; "
        "':memory:' keeps them in memory only.",
    )
    max_fault_duration: Duration = Field(
        3600.0, description="Longest a fault may last; every fault expires by itself."
    )
    canary_drill: CanaryDrillConfig = Field(
        default_factory=CanaryDrillConfig, description="Scheduled drill on a canary share."
    )
