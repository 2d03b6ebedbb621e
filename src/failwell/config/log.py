"""Config of the inference and audit log: the top-level ``log:`` section.

Two streams share one backend: ``inference`` (one record per answered or refused request) and
``audit`` (admin and configuration actions). Each has its own durability mode."""

from __future__ import annotations

import enum
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failwell.config.units import Duration, Size


class LogBackend(enum.StrEnum):
    SEGMENTS = "segments"
    REDIS = "redis"


class Durability(enum.StrEnum):
    SYNC = "sync"
    BATCH = "batch"


class OnFailure(enum.StrEnum):
    SERVE = "serve"
    REFUSE = "refuse"


class InputPolicy(enum.StrEnum):
    FULL = "full"
    HASHED = "hashed"
    OMITTED = "omitted"


class _Section(BaseModel):
    # config/models.py imports this module, so the frozen base is declared here too
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetentionConfig(_Section):
    max_size: Size = Field(
        1024 * 1024 * 1024,
        description="segments: total size kept per stream; the oldest segments go first.",
    )
    max_age: Duration = Field(
        30 * 86400.0, description="segments: segments whose newest record is older are deleted."
    )
    max_entries: int = Field(
        10_000_000, ge=1, description="redis: records kept per stream (XTRIM, approximate)."
    )


class LogConfig(_Section):
    enabled: bool = Field(False, description="Write the inference and audit log.")
    backend: LogBackend = Field(
        LogBackend.SEGMENTS,
        description="segments (append-only files on local disk) or redis (Redis Streams).",
    )
    path: str = Field(
        ".failwell/log", description="segments: directory of the log; one folder per stream."
    )
    redis_url: str | None = Field(
        None, description="redis: URL of the shared Redis, e.g. redis://127.0.0.1:6379/0."
    )
    redis_prefix: str = Field("failwell:log", description="redis: prefix of the stream keys.")
    durability: Durability = Field(
        Durability.BATCH,
        description="Inference stream: sync (answer sent after its record is durable) or batch.",
    )
    audit_durability: Durability = Field(
        Durability.SYNC, description="Audit stream: sync or batch."
    )
    batch_window: Duration = Field(
        0.050, description="batch: longest wait before pending records are written and fsynced."
    )
    on_failure: OnFailure = Field(
        OnFailure.SERVE,
        description="When a record cannot be written: serve (answer, count the drop) or refuse (503).",
    )
    max_pending: int = Field(
        100_000, ge=1, description="Records waiting for the disk before new ones are dropped."
    )
    segment_size: Size = Field(
        64 * 1024 * 1024, description="segments: a segment file is closed past this size."
    )
    min_free: Size = Field(
        256 * 1024 * 1024, description="segments: free disk space below which readiness fails."
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="How long records are kept."
    )

    @field_validator("batch_window")
    @classmethod
    def _window(cls, value: float) -> float:
        if not 0 < value <= 10:
            raise ValueError("batch_window must be between 0 and 10s")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError(f"expected a redis:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _backend(self) -> LogConfig:
        if self.backend is LogBackend.REDIS and not self.redis_url:
            raise ValueError("the redis backend needs 'redis_url'")
        if self.segment_size < 4096:
            raise ValueError("segment_size must be at least 4KiB")
        return self
