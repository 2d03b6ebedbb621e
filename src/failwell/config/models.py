"""Typed, frozen configuration models. Every field has a default or is required, and a doc.

The YAML keys are these models' field names; ``docs/configuration.md`` documents each one.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failwell.config.control import ControlConfig
from failwell.config.drift import DriftConfig, QualityConfig
from failwell.config.fields import FieldType
from failwell.config.fleet import FleetConfig
from failwell.config.log import InputPolicy, LogConfig
from failwell.config.managed import ManagedConfig
from failwell.config.observe import AlertsConfig, CanaryConfig, HealthConfig, SloConfig, Timestamp
from failwell.config.registry import RegistryConfig
from failwell.config.retrain import RetrainConfig
from failwell.config.security import AdmissionConfig, ListenerTls, SecurityConfig, UpstreamTls
from failwell.config.tensors import TensorsConfig, TensorWire
from failwell.config.units import Duration, Size


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_LISTEN = re.compile(r"^(?P<host>[^:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_MODEL_REF = re.compile(r"^[A-Za-z0-9][\w.-]*@[A-Za-z0-9][\w.-]*$")


class CacheStoreConfig(Frozen):
    path: str = Field(
        ".failwell/cache.sqlite",
        description="SQLite file backing the answer cache; ':memory:' keeps it in memory only.",
    )
    max_entries: int = Field(100_000, ge=1, description="Entries kept in the in-process LRU.")


class GatewayConfig(Frozen):
    listen: str = Field("127.0.0.1:8080", description="host:port the gateway listens on.")
    max_body: Size = Field(
        1024 * 1024,
        description="Largest request body accepted (413 beyond); a route may set its own (routes.NAME.max_body). Bodies are held whole while in flight, so this bounds memory per request.",
    )
    cache: CacheStoreConfig = Field(
        default_factory=CacheStoreConfig, description="Answer cache store."
    )
    access_log: bool = Field(False, description="Log every request (costs CPU on the hot path).")
    tls: ListenerTls | None = Field(
        None, description="TLS for the listener (HTTPS, optional mTLS)."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        m = _LISTEN.match(value)
        if not m or not 0 < int(m.group("port")) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @property
    def host(self) -> str:
        m = _LISTEN.match(self.listen)
        assert m is not None
        return m.group("host").strip("[]")

    @property
    def port(self) -> int:
        m = _LISTEN.match(self.listen)
        assert m is not None
        return int(m.group("port"))


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


class TierKind(enum.StrEnum):
    MODEL = "model"
    RULES = "rules"
    CACHE = "cache"
    STATIC = "static"


_UNSET: Any = object()


class TierConfig(Frozen):
    name: str = Field(description="Tier name, reported with every answer it gives.")
    kind: TierKind | None = Field(
        None, description="model, rules, cache or static; inferred from the other keys."
    )
    backend: str | None = Field(None, description="model: the backend that answers.")
    rules: str | None = Field(
        None, description="rules: import path 'module:function' of a function of the input."
    )
    value: Any = Field(_UNSET, description="static: the constant answer.")
    quality: str | None = Field(
        None, description="Quality label (default by kind: full/reduced, generic, stale, minimal)."
    )
    reserve: Duration | None = Field(
        None, description="Time the tiers before this one leave for it."
    )

    @model_validator(mode="after")
    def _kind(self) -> TierConfig:
        given = [k for k, v in (("backend", self.backend), ("rules", self.rules)) if v is not None]
        if self.value is not _UNSET:
            given.append("value")
        if len(given) > 1:
            raise ValueError(f"a tier takes one of backend, rules, value; got {', '.join(given)}")
        inferred = (
            {"backend": TierKind.MODEL, "rules": TierKind.RULES, "value": TierKind.STATIC}.get(
                given[0]
            )
            if given
            else TierKind.CACHE
        )
        if self.kind is not None and self.kind is not inferred:
            if self.kind is TierKind.CACHE or not given:
                raise ValueError(f"a {self.kind.value} tier needs {_NEEDS[self.kind]}")
            raise ValueError(f"kind {self.kind.value!r} does not match key {given[0]!r}")
        object.__setattr__(self, "kind", inferred)
        if self.rules is not None and not _IMPORT_PATH.match(self.rules):
            raise ValueError(f"rules must look like 'module:function', got {self.rules!r}")
        return self

    @property
    def static_value(self) -> Any:
        return None if self.value is _UNSET else self.value


_NEEDS = {
    TierKind.MODEL: "'backend'",
    TierKind.RULES: "'rules'",
    TierKind.STATIC: "'value'",
    TierKind.CACHE: "no backend, rules or value",
}


class RouteCacheConfig(Frozen):
    key: str | None = Field(
        None, description="Template of the cache key, e.g. '{user_id}'; default: every input."
    )
    ttl: Duration = Field(86400.0, description="How long a stored answer may be served as stale.")


class MidStream(enum.StrEnum):
    ERROR = "error"
    CONTINUE = "continue"


class StreamConfig(Frozen):
    first_token_timeout: Duration = Field(
        10.0,
        description="chat: time for an attempt's first content chunk; past it the next replica or tier takes the stream.",
    )
    idle_timeout: Duration = Field(
        30.0,
        description="chat: longest gap between chunks once the stream has begun; past it the stream ends with an error event.",
    )
    on_failure: MidStream = Field(
        MidStream.ERROR,
        description="chat: after the first chunk, a stall, cut, malformed chunk or error event ends the stream with an in-band error event (error), or resumes it on the next model tier with the text so far as an assistant prefix (continue; a request with tools gets the error).",
    )
    max_resumes: int = Field(
        1,
        ge=1,
        le=10,
        description="chat, on_failure continue: how many times one stream may resume on a later tier.",
    )


class RouteKind(enum.StrEnum):
    PREDICT = "predict"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"


class RouteConfig(Frozen):
    kind: RouteKind = Field(
        RouteKind.PREDICT,
        description="predict (named inputs), chat (messages) or embeddings (input texts).",
    )
    input: dict[str, FieldType] = Field(
        default_factory=dict, description="predict: input field name → type."
    )
    tensors: TensorsConfig | None = Field(
        None,
        description="predict: a tensor route (V2 tensors of any shape and datatype, batches) instead of input fields; a predict route without 'input' takes its tensor specs from tier 1's V2 server.",
    )
    max_body: Size | None = Field(
        None, description="Largest request body of this route (default: gateway.max_body)."
    )
    deadline: Duration = Field(1.0, description="Time for the whole request, every tier included.")
    cache: RouteCacheConfig = Field(
        default_factory=RouteCacheConfig, description="Cache tier settings."
    )
    canary: CanaryConfig | None = Field(None, description="Canary inferences through tier 1.")
    slo: SloConfig = Field(default_factory=SloConfig, description="Objectives and burn alerts.")
    tiers: tuple[TierConfig, ...] = Field(
        min_length=1, description="The fallback chain, first tier first."
    )
    log_input: InputPolicy = Field(
        InputPolicy.FULL, description="Inputs in the inference log: full, hashed or omitted."
    )
    admission: AdmissionConfig = Field(
        default_factory=AdmissionConfig, description="Rate and concurrency limits of the route."
    )
    drift: DriftConfig | None = Field(
        None, description="Watch the inputs (and tier-1 outputs) for drift from a reference."
    )
    quality: QualityConfig | None = Field(
        None, description="Live quality from labels sent later to POST /v1/feedback/{route}."
    )
    retrain: RetrainConfig | None = Field(
        None, description="Retrain the route's model on drift, quality or freshness signals."
    )
    stream: StreamConfig = Field(
        default_factory=StreamConfig, description="chat: streaming (stream: true) time limits."
    )

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        if isinstance(value, dict):
            known = [t.value for t in FieldType]
            for name, kind in value.items():
                if kind not in known:
                    raise ValueError(
                        f"field {name!r}: unknown type {kind!r} (use {', '.join(known)})"
                    )
        return value

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("the deadline must be positive")
        return value

    @model_validator(mode="after")
    def _shape(self) -> RouteConfig:
        if self.kind is RouteKind.PREDICT and not self.input and self.tensors is None:
            object.__setattr__(self, "tensors", TensorsConfig())  # specs from the model server
        if self.input and self.tensors is not None:
            raise ValueError("a route takes 'input' fields or 'tensors', not both")
        if self.kind is not RouteKind.PREDICT and (self.input or self.tensors is not None):
            raise ValueError(f"a {self.kind.value} route has no 'input' or 'tensors'")
        names = [t.name for t in self.tiers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"tier names must be unique: {', '.join(sorted(dupes))}")
        return self


class FailwellConfig(Frozen):
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig, description="The listener and stores."
    )
    backends: dict[str, BackendConfig] = Field(default_factory=dict, description="Named backends.")
    routes: dict[str, RouteConfig] = Field(min_length=1, description="Named routes.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert delivery.")
    log: LogConfig = Field(default_factory=LogConfig, description="Inference and audit log.")
    control: ControlConfig = Field(
        default_factory=ControlConfig, description="Fault injection, flags, canary drill."
    )
    registry: RegistryConfig = Field(
        default_factory=RegistryConfig, description="The model registry (docs/registry.md)."
    )
    security: SecurityConfig = Field(
        default_factory=SecurityConfig, description="API keys, limits and admission."
    )
    fleet: FleetConfig | None = Field(
        None, description="State shared with other gateways through Redis; none by default."
    )


RouteKindName = Literal["predict", "chat", "embeddings"]
