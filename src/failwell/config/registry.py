"""The ``registry:`` section: where model versions live and where they are replicated."""

from __future__ import annotations

import enum
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from failwell.config.units import Duration

_STORE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ReplicationMode(enum.StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreConfig(_Frozen):
    name: str = Field(description="Store name, used by `registry restore --from NAME`.")
    url: str = Field(
        description="fsspec URL: file:///srv/replica, s3://bucket/prefix (s3fs), memory://x."
    )
    mode: ReplicationMode = Field(
        ReplicationMode.SYNC,
        description="sync: a push returns once the version is here; async: journaled, copied later.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Filesystem options, e.g. s3fs endpoint_url, key, secret (${ENV} allowed).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _STORE_NAME.match(value) or value == "primary":
            raise ValueError(f"bad store name {value!r} ('primary' is the local folder)")
        return value


class RegistryConfig(_Frozen):
    path: str = Field(
        ".failwell/registry", description="The primary store: a local folder (atomic writes)."
    )
    replicas: tuple[StoreConfig, ...] = Field((), description="Secondary stores, in read order.")
    checkouts: str = Field(
        ".failwell/checkouts", description="Where verified artifacts are unpacked for loading."
    )
    watch: Duration = Field(
        1.0, description="How often a serving gateway checks whether an alias moved."
    )

    @field_validator("replicas")
    @classmethod
    def _unique(cls, value: tuple[StoreConfig, ...]) -> tuple[StoreConfig, ...]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError("replica names must be unique")
        return value
