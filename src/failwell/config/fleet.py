"""The ``fleet`` section: many gateways (processes or machines) sharing state through Redis.

With no ``fleet`` section a gateway keeps all its state to itself, as before."""

from __future__ import annotations

import os
import re
import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failwell.config.units import Duration

_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")


def default_instance() -> str:
    """``host-pid``: unique among the gateways of one machine and across machines."""
    return f"{socket.gethostname()}-{os.getpid()}"


class FleetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    redis: str = Field(
        description="redis:// URL of the Redis every gateway of the fleet shares, e.g. "
        "redis://10.0.0.5:6379/0."
    )
    name: str = Field(
        "default",
        description="The fleet: keys are hash-tagged {failwell:NAME} so Redis Cluster keeps "
        "one fleet's control state in one slot (shared answers spread by key, labels by "
        "route); two fleets on one Redis keep apart.",
    )
    instance: str | None = Field(
        None, description="This gateway's name in the fleet; default: host name and process id."
    )
    timeout: Duration = Field(
        0.25, gt=0, description="Socket timeout of each Redis command (never on a request path)."
    )
    reconnect: Duration = Field(
        0.1, gt=0, description="First wait before reconnecting to Redis; doubles on each failure."
    )
    max_reconnect: Duration = Field(
        5.0, gt=0, description="Longest wait between two reconnection attempts."
    )
    breakers: bool = Field(
        True, description="Share breaker openings: a replica one gateway opens is skipped by all."
    )

    controls: bool = Field(
        True, description="Share feature flags and injected faults: set once, obeyed by all."
    )

    cache: bool = Field(
        True,
        description="Share the answer cache: tier-1 answers are written to Redis off the request "
        "path; the cache tier reads them last, within its own time budget.",
    )
    cache_ttl: Duration = Field(86400.0, gt=0, description="How long Redis keeps a shared answer.")
    cache_refresh: Duration = Field(
        10.0,
        ge=0,
        description="Shortest time between two writes of one key to the shared cache: a hot "
        "key costs one write per period, not one per answer.",
    )

    lease: Duration = Field(
        2.0,
        gt=0,
        description="The control lease: one process of the fleet runs the control loops "
        "(probes, canaries, SLO and live-quality alerts on the fleet's counts and labels, "
        "rollouts, drift judging); another takes over within this time of it stopping or "
        "losing Redis.",
    )

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError(f"expected a redis:// URL, got {value!r}")
        return value

    @field_validator("name", "instance")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"letters, digits, '.', '_' and '-' only, got {value!r}")
        return value

    @model_validator(mode="after")
    def _backoff(self) -> FleetConfig:
        if self.max_reconnect < self.reconnect:
            raise ValueError("max_reconnect must be at least reconnect")
        return self

    @property
    def me(self) -> str:
        return self.instance or default_instance()
