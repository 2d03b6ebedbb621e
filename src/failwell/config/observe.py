"""Config of what watches the gateway: active health probes per backend (``health:``), canary
inferences and SLOs per route (``canary:``, ``slo:``) and where alerts go (``alerts:``)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from failwell.config.base import Frozen
from failwell.config.units import Duration


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


# An ISO 8601 time; UTC when no zone is given.
Timestamp = Annotated[dt.datetime, AfterValidator(_utc)]


class HealthConfig(Frozen):
    enabled: bool = Field(True, description="Probe every replica of this backend actively.")
    path: str | None = Field(
        None,
        description="Liveness path probed with GET; default /v2/health/ready (v2), /v1/models (openai).",
    )
    interval: Duration = Field(2.0, description="Time between two probes of one replica.")
    timeout: Duration = Field(0.5, description="Time limit of one probe.")
    down_after: int = Field(
        3, ge=1, description="Consecutive failed probes that take a replica out of rotation."
    )
    up_after: int = Field(
        2, ge=1, description="Consecutive passed probes that put it back into rotation."
    )

    @model_validator(mode="after")
    def _timeout(self) -> HealthConfig:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.timeout <= 0 or self.timeout > self.interval:
            raise ValueError("timeout must be positive and at most the interval")
        return self


class CanaryCheck(Frozen):
    inputs: dict[str, Any] = Field(
        description="Inputs of the canary request (predict: fields; chat: {messages: [...]})."
    )
    expect: Any = Field(
        None,
        description="Expected outputs, compared exactly (numbers within 'tolerance'); null: any answer.",
    )
    tolerance: float = Field(0.0, ge=0, description="Absolute tolerance for numbers in 'expect'.")
    range: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Output field → [low, high]: every number in it must lie in the range.",
    )
    keys: tuple[str, ...] = Field(
        (), description="Schema check: output fields that must be present."
    )


class CanaryConfig(Frozen):
    interval: Duration = Field(10.0, description="Time between two canary rounds.")
    latency_budget: Duration = Field(
        0.5, description="A canary slower than this makes the route degraded."
    )
    checks: tuple[CanaryCheck, ...] = Field(
        min_length=1, description="Canary requests with their expected outputs."
    )
    down_after: int = Field(
        2,
        ge=1,
        description="Consecutive failed canaries that take a replica out of rotation (0: never).",
    )


class BurnWindow(Frozen):
    long: Duration = Field(description="Long window, e.g. 1h.")
    short: Duration = Field(description="Short window, e.g. 5m; both must burn to alert.")
    burn_rate: float = Field(gt=0, description="Burn rate both windows must exceed.")
    severity: str = Field("page", description="Alert severity label (page, ticket).")

    @model_validator(mode="after")
    def _order(self) -> BurnWindow:
        if not 0 < self.short < self.long:
            raise ValueError("short must be positive and shorter than long")
        return self


DEFAULT_WINDOWS = (
    BurnWindow(long=3600.0, short=300.0, burn_rate=14.4, severity="page"),
    BurnWindow(long=21600.0, short=1800.0, burn_rate=6.0, severity="page"),
    BurnWindow(long=259200.0, short=21600.0, burn_rate=1.0, severity="ticket"),
)


class FreshnessConfig(Frozen):
    max_model_age: Duration | None = Field(
        None,
        description="Freshness objective: a tier-1 answer from a model version older than this is a bad event.",
    )
    features: dict[str, Duration] = Field(
        default_factory=dict,
        description="Input field → bound: the field holds when the feature was computed (float epoch seconds or ISO 8601 str); an answer whose feature is older than the bound is a bad event.",
    )

    @model_validator(mode="after")
    def _positive(self) -> FreshnessConfig:
        if self.max_model_age is not None and self.max_model_age <= 0:
            raise ValueError("max_model_age must be positive")
        for field, bound in self.features.items():
            if bound <= 0:
                raise ValueError(f"features.{field}: the bound must be positive")
        return self


class SloConfig(Frozen):
    availability: float | None = Field(
        0.999, gt=0, lt=1, description="Objective: share of requests answered by any tier."
    )
    quality: float | None = Field(
        None, gt=0, lt=1, description="Objective: share answered by tiers 1 and 2."
    )
    tier1_floor: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Alert when the tier-1 share over the shortest window falls below this.",
    )
    latency_p99: Duration | None = Field(
        None, description="Objective: 99% of tier-1 answers within this time."
    )
    ttft_p99: Duration | None = Field(
        None,
        description="Objective: 99% of streamed answers' first chunks within this time (TTFT, any tier).",
    )
    max_stale_age: Duration | None = Field(
        None,
        description="Freshness objective: 99% of answers younger than this (stale cache answers count their age).",
    )
    freshness: FreshnessConfig | None = Field(
        None, description="Freshness objective: model age and staleness of declared features."
    )
    period: Duration = Field(2592000.0, description="Error budget period (default 30 days).")
    windows: tuple[BurnWindow, ...] = Field(
        DEFAULT_WINDOWS, min_length=1, description="Multi-window burn-rate alert rules."
    )
    fallback_only_ready: bool = Field(
        True,
        description="Count the route ready when tier 1 has no usable replica but later tiers "
        "answer (false: tier 1 down makes the gateway unready). /health/ready?tier1=true "
        "ignores this and asks for tier 1 on every route.",
    )


class AlertsConfig(Frozen):
    webhook: str | None = Field(
        None, description="URL that receives a JSON POST when an alert fires or resolves."
    )
    evaluate_every: Duration = Field(5.0, description="Time between two SLO evaluations.")
    repeat_after: Duration = Field(
        3600.0, description="Re-send a firing alert after this long (no storm while it holds)."
    )
    timeout: Duration = Field(2.0, description="Time limit of one webhook delivery.")

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value
