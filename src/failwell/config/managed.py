"""Config of managed local replicas (``backends.<name>.managed``): the command that starts one,
the ports it may take, how many run, how the supervisor restarts, quarantines and drains them,
and the autoscaling policy (the same policy the Kubernetes manifests are generated from)."""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import Field, field_validator, model_validator

from failwell.config.base import Frozen
from failwell.config.units import Duration

PORT_PLACEHOLDER = "{port}"


class RestartConfig(Frozen):
    backoff: Duration = Field(
        0.5, description="Wait before restarting after the first failure; doubles per failure."
    )
    max_backoff: Duration = Field(30.0, description="Cap on the wait between two restarts.")
    crash_loop: int = Field(
        5,
        ge=1,
        description="Failures (exit, failed liveness or canary, no readiness) within 'window' "
        "that quarantine the backend's replicas with an alert instead of restarting them.",
    )
    window: Duration = Field(
        60.0, description="Failures older than this no longer count for backoff or quarantine."
    )


class TrendConfig(Frozen):
    enabled: bool = Field(
        False,
        description="Also scale for the request rate expected 'horizon' ahead (a straight "
        "line fitted to the rates of the last 'window'), so capacity arrives before the load.",
    )
    horizon: Duration = Field(
        5.0, gt=0, description="How far ahead to forecast: about the time a new replica takes."
    )
    window: Duration = Field(
        10.0, gt=0, description="The recent request rates the line is fitted to."
    )
    min_rate: float = Field(
        1.0, ge=0, description="Below this many requests/s the trend is not trusted (no vote)."
    )


class AutoscaleConfig(Frozen):
    enabled: bool = Field(True, description="Scale between min and max; off: keep min.")
    target_in_flight: float = Field(
        4.0, gt=0, description="Target requests in flight per serving replica (queue depth)."
    )
    target_p99: Duration | None = Field(
        None, description="Target tier-1 latency p99 of the backend; none: queue depth only."
    )
    tolerance: float = Field(
        0.1, ge=0, lt=1, description="No change while load/target stays within 1 ± this."
    )
    interval: Duration = Field(1.0, description="Time between two decisions.")
    up_window: Duration = Field(
        3.0,
        description="Stabilisation before scaling up: the lowest recommendation of this window.",
    )
    down_window: Duration = Field(
        30.0,
        description="Stabilisation before scaling down: the highest recommendation of this window.",
    )
    up_cooldown: Duration = Field(5.0, description="Least time between two scale-ups.")
    down_cooldown: Duration = Field(
        30.0, description="Least time after any change before a scale-down."
    )
    max_step_up: int = Field(4, ge=1, description="Most replicas added by one decision.")
    max_step_down: int = Field(1, ge=1, description="Most replicas removed by one decision.")
    trend: TrendConfig = Field(
        default_factory=TrendConfig,
        description="Opt-in: scale for the request rate forecast a few seconds ahead.",
    )


class ManagedConfig(Frozen):
    command: tuple[str, ...] = Field(
        description="Command that starts one replica (a list, or a string split like a shell); "
        "'{port}' is replaced by the replica's port."
    )
    ports: tuple[int, int] = Field(description="First and last port replicas may listen on.")
    host: str = Field("127.0.0.1", description="Host the replicas listen on.")
    min: int = Field(2, ge=1, description="Fewest serving replicas (2 keeps one for a failure).")
    max: int = Field(4, ge=1, description="Most serving replicas.")
    standby: int = Field(
        0, ge=0, description="Warm standbys: started, ready and probed, out of rotation."
    )
    start_timeout: Duration = Field(
        60.0, description="Time a new replica has to pass readiness before it counts as failed."
    )
    drain: Duration = Field(
        10.0, description="Time a leaving replica has to finish its requests in flight."
    )
    stop_grace: Duration = Field(5.0, description="Time between SIGTERM and SIGKILL.")
    restart: RestartConfig = Field(
        default_factory=RestartConfig, description="Backoff and crash-loop quarantine."
    )
    autoscale: AutoscaleConfig = Field(
        default_factory=AutoscaleConfig, description="Autoscaling on queue depth and latency."
    )
    log_dir: str = Field(
        ".failwell/replicas", description="Folder of the replicas' output files and run state."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables added for the replicas."
    )

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        return tuple(shlex.split(value)) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shape(self) -> ManagedConfig:
        if not self.command:
            raise ValueError("command must not be empty")
        if not any(PORT_PLACEHOLDER in part for part in self.command):
            raise ValueError(f"command must contain {PORT_PLACEHOLDER} (the replica's port)")
        first, last = self.ports
        if not 0 < first <= last < 65536:
            raise ValueError(f"ports must be [first, last] within 1-65535, got {list(self.ports)}")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        needed = self.max + self.standby + 1  # one spare for a replacement starting
        if last - first + 1 < needed:
            raise ValueError(
                f"ports hold {last - first + 1} ports; max + standby + 1 needs {needed}"
            )
        return self

    def argv(self, port: int) -> list[str]:
        return [part.replace(PORT_PLACEHOLDER, str(port)) for part in self.command]

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"
