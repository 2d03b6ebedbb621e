"""Typed, frozen configuration models. Every field has a default or is required, and a doc.

The YAML keys are these models' field names; ``docs/configuration.md`` documents each one.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from failwell.config.backends import BackendConfig
from failwell.config.base import Frozen
from failwell.config.control import ControlConfig
from failwell.config.drift import DriftConfig, QualityConfig
from failwell.config.fields import FieldType
from failwell.config.fleet import FleetConfig
from failwell.config.log import InputPolicy, LogConfig
from failwell.config.observe import AlertsConfig, CanaryConfig, SloConfig
from failwell.config.registry import RegistryConfig
from failwell.config.retrain import RetrainConfig
from failwell.config.security import AdmissionConfig, ListenerTls, SecurityConfig
from failwell.config.tensors import TensorsConfig
from failwell.config.units import Duration, Size

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


class Fallback(enum.StrEnum):
    BATCH = "batch"  # the whole batch from one tier
    ROWS = "rows"  # once tier 1 fails, each row from the first tier that can answer it


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
    fallback: Fallback = Field(
        Fallback.BATCH,
        description="tensor routes: when tier 1 fails, answer the whole batch from one tier (batch), or each row from the first later tier that can answer it (rows: the cache tier per row, a rules list with null for rows it cannot answer, the tiers used per row in the answer).",
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
