"""Backend configuration: replicas, retries, breakers, the wire protocol and the backend."""

from __future__ import annotations

import enum
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from failwell.config.base import Frozen
from failwell.config.managed import ManagedConfig
from failwell.config.observe import HealthConfig, Timestamp
from failwell.config.security import UpstreamTls
from failwell.config.tensors import TensorWire
from failwell.config.units import Duration

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_MODEL_REF = re.compile(r"^[A-Za-z0-9][\w.-]*@[A-Za-z0-9][\w.-]*$")


class ReplicaConfig(Frozen):
    url: str = Field(description="Base URL of the replica, e.g. http://127.0.0.1:9001.")
    zone: str = Field("default", description="Zone label, for metrics and failover runbooks.")
    priority: int = Field(
        0, ge=0, description="Priority group: 0 serves first; higher groups are standbys."
    )
    name: str | None = Field(None, description="Replica name in metrics; defaults to host:port.")
    capacity: float = Field(
        1.0,
        gt=0,
        description="Declared capacity (relative); admission scales to the serving group's.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @property
    def label(self) -> str:
        return self.name or self.url.split("://", 1)[1]


class RetryConfig(Frozen):
    attempts: int = Field(
        2, ge=1, le=10, description="Total attempts per tier, the first included."
    )
    backoff: Duration = Field(
        0.005, description="Base backoff; attempt n waits up to backoff*2^(n-1), fully jittered."
    )
    max_backoff: Duration = Field(0.040, description="Cap on one backoff wait.")


class BreakerConfig(Frozen):
    failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures that open a replica's breaker."
    )
    recovery: Duration = Field(
        10.0, description="Time a breaker stays open before half-open probes."
    )
    half_open_max: int = Field(1, ge=1, description="Probes allowed in flight while half-open.")


class WireProtocol(enum.StrEnum):
    V2 = "v2"
    OPENAI = "openai"
    PYTHON = "python"


_PROBE_PATHS = {WireProtocol.V2: "/v2/health/ready", WireProtocol.OPENAI: "/v1/models"}


class BackendConfig(Frozen):
    protocol: WireProtocol = Field(
        description="v2 (Open Inference Protocol), openai (chat completions) or python (in-process)."
    )
    model: str | None = Field(
        None,
        description="Model name at the upstream (v2 path / openai 'model'); defaults to the backend name.",
    )
    replicas: tuple[ReplicaConfig, ...] = Field((), description="Replicas of an HTTP backend.")
    timeout: Duration = Field(1.0, description="Time limit of one attempt.")
    retry: RetryConfig = Field(
        default_factory=RetryConfig, description="Retries within the request deadline."
    )
    breaker: BreakerConfig = Field(
        default_factory=BreakerConfig, description="Circuit breaker per replica."
    )
    max_connections: int = Field(256, ge=1, description="Open connections per replica.")
    api_key: str | None = Field(
        None, description="Bearer token sent upstream (openai); use ${ENV} or file:PATH."
    )
    target: str | None = Field(
        None, description="python: import path 'module:factory' of the model."
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="python: keyword arguments for the factory."
    )
    workers: int = Field(
        4, ge=1, description="python: threads running the model; also its concurrency limit."
    )
    version: str | None = Field(
        None, description="Model version reported in answers when the upstream does not say."
    )
    health: HealthConfig = Field(
        default_factory=HealthConfig,
        description="Active health probes per replica: on by default for HTTP backends; "
        "'false' turns them off.",
    )

    @field_validator("health", mode="before")
    @classmethod
    def _health(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    model_created: Timestamp | None = Field(
        None,
        description="When the served model was created (ISO 8601, UTC without a zone), for its age; default: when the gateway first saw its model_version. model_ref backends use the registry's time.",
    )
    model_ref: str | None = Field(
        None,
        description="python: serve NAME@ALIAS or NAME@VERSION from the registry; the artifact's path goes to the factory as model_dir.",
    )
    tls: UpstreamTls | None = Field(None, description="TLS to https:// replicas (CA, client cert).")
    tensor_data: TensorWire = Field(
        TensorWire.MIRROR,
        description="v2, tensor routes: how tensors go upstream: mirror (binary when the client sent binary), binary (Triton's binary extension) or json (servers without it, e.g. MLServer).",
    )
    managed: ManagedConfig | None = Field(
        None,
        description="Local replicas the gateway starts, restarts and scales (docs/operations.md).",
    )
    tools: bool = Field(
        True,
        description="chat: the model takes tool definitions; false skips it for requests with tools.",
    )
    dimension: int | None = Field(
        None,
        ge=1,
        description="openai/python: an embeddings model answering vectors of this size (answers of another size are malformed); tiers of one embeddings route must share it.",
    )
    vision: bool = Field(
        True,
        description="chat: the model takes image content parts; false skips it for requests with images.",
    )

    @property
    def probe_path(self) -> str:
        """The liveness path probed with GET (``health.path`` or the protocol's default)."""
        return self.health.path or _PROBE_PATHS.get(self.protocol, "/")

    @property
    def supports(self) -> frozenset[str]:
        """What a chat request may need of this backend: ``tools``, ``vision``."""
        return frozenset(n for n, on in (("tools", self.tools), ("vision", self.vision)) if on)

    @model_validator(mode="after")
    def _by_protocol(self) -> BackendConfig:
        if self.protocol is WireProtocol.PYTHON:
            if not self.target:
                raise ValueError("a python backend needs 'target' (module:factory)")
            if not _IMPORT_PATH.match(self.target):
                raise ValueError(f"target must look like 'module:factory', got {self.target!r}")
            if self.replicas:
                raise ValueError("a python backend runs in-process and takes no 'replicas'")
            if self.managed is not None:
                raise ValueError("a python backend runs in-process and takes no 'managed'")
        elif not self.replicas and self.managed is None:
            raise ValueError(
                f"a {self.protocol.value} backend needs at least one replica or 'managed'"
            )
        if self.model_ref is not None and (
            self.protocol is not WireProtocol.PYTHON or not _MODEL_REF.match(self.model_ref)
        ):
            raise ValueError("model_ref must be NAME@ALIAS or NAME@VERSION on a python backend")
        return self
