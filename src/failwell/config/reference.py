"""Generates the key reference of docs/configuration.md from the config models, so the doc
cannot drift from the code: ``python -m failwell.config.reference``."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from failwell.config.backends import BackendConfig, BreakerConfig, ReplicaConfig, RetryConfig
from failwell.config.control import CanaryDrillConfig, ControlConfig
from failwell.config.drift import DriftConfig, DriftThreshold, QualityConfig
from failwell.config.fleet import FleetConfig
from failwell.config.log import LogConfig, RetentionConfig
from failwell.config.managed import AutoscaleConfig, ManagedConfig, RestartConfig
from failwell.config.models import (
    CacheStoreConfig,
    FailwellConfig,
    GatewayConfig,
    RouteCacheConfig,
    RouteConfig,
    TierConfig,
)
from failwell.config.observe import (
    AlertsConfig,
    BurnWindow,
    CanaryCheck,
    CanaryConfig,
    FreshnessConfig,
    HealthConfig,
    SloConfig,
)
from failwell.config.registry import RegistryConfig, StoreConfig
from failwell.config.retrain import RetrainCanary, RetrainConfig
from failwell.config.security import (
    AdmissionConfig,
    ApiKeyConfig,
    ConcurrencyConfig,
    ListenerTls,
    RateConfig,
    RequestLimits,
    SecurityConfig,
    UpstreamTls,
)
from failwell.config.tensors import TensorsConfig, TensorSpec
from failwell.config.units import format_duration

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("(top level)", FailwellConfig),
    ("gateway", GatewayConfig),
    ("gateway.cache", CacheStoreConfig),
    ("gateway.tls", ListenerTls),
    ("backends.NAME", BackendConfig),
    ("backends.NAME.replicas[i]", ReplicaConfig),
    ("backends.NAME.retry", RetryConfig),
    ("backends.NAME.breaker", BreakerConfig),
    ("backends.NAME.tls", UpstreamTls),
    ("backends.NAME.managed", ManagedConfig),
    ("backends.NAME.managed.restart", RestartConfig),
    ("backends.NAME.managed.autoscale", AutoscaleConfig),
    ("routes.NAME", RouteConfig),
    ("routes.NAME.cache", RouteCacheConfig),
    ("routes.NAME.tensors", TensorsConfig),
    ("routes.NAME.tensors.inputs.NAME / outputs.NAME", TensorSpec),
    ("routes.NAME.tiers[i]", TierConfig),
    ("backends.NAME.health", HealthConfig),
    ("routes.NAME.canary", CanaryConfig),
    ("routes.NAME.canary.checks[i]", CanaryCheck),
    ("routes.NAME.slo", SloConfig),
    ("routes.NAME.slo.windows[i]", BurnWindow),
    ("routes.NAME.slo.freshness", FreshnessConfig),
    ("alerts", AlertsConfig),
    ("log", LogConfig),
    ("log.retention", RetentionConfig),
    ("control", ControlConfig),
    ("control.canary_drill", CanaryDrillConfig),
    ("registry", RegistryConfig),
    ("registry.replicas[i]", StoreConfig),
    ("routes.NAME.admission", AdmissionConfig),
    ("routes.NAME.admission.concurrency", ConcurrencyConfig),
    ("routes.NAME.drift", DriftConfig),
    ("routes.NAME.drift.threshold", DriftThreshold),
    ("routes.NAME.quality", QualityConfig),
    ("routes.NAME.retrain", RetrainConfig),
    ("routes.NAME.retrain.canary", RetrainCanary),
    ("security", SecurityConfig),
    ("security.keys[i]", ApiKeyConfig),
    ("security.limits", RequestLimits),
    ("fleet", FleetConfig),
    ("(any) rate", RateConfig),
]
BEGIN = "<!-- BEGIN GENERATED: python -m failwell.config.reference -->"
END = "<!-- END GENERATED -->"
_DURATIONS = {
    "timeout",
    "backoff",
    "max_backoff",
    "recovery",
    "deadline",
    "ttl",
    "reserve",
    "interval",
    "latency_budget",
    "period",
    "evaluate_every",
    "repeat_after",
    "batch_window",
    "max_age",
    "max_fault_duration",
    "every",
    "duration",
    "first_after",
    "watch",
    "queue_timeout",
    "body_timeout",
    "reconnect",
    "max_reconnect",
    "cache_ttl",
    "cache_refresh",
    "start_timeout",
    "drain",
    "stop_grace",
    "window",
    "target_p99",
    "up_window",
    "down_window",
    "up_cooldown",
    "down_cooldown",
    "cooldown",
    "schedule",
    "step_time",
}


def _default(name: str, field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "see below"
    else:
        value = field.default
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return ", ".join(
            f"`{format_duration(w.long)}/{format_duration(w.short)} x{w.burn_rate:g}`"
            for w in value
            if hasattr(w, "burn_rate")
        )
    if value is PydanticUndefined or (value is not None and type(value).__name__ == "object"):
        return "—"
    if isinstance(value, enum.Enum):
        value = value.value
    if name in _DURATIONS and isinstance(value, float):
        return f"`{format_duration(value)}`"
    if name == "max_body" and isinstance(value, int):
        return f"`{value // 1024 // 1024}MiB`"
    return f"`{value!r}`" if value not in ({}, ()) else "empty"


def reference() -> str:
    lines = [BEGIN, ""]
    for path, model in SECTIONS:
        lines += [f"### `{path}`", "", "| key | default | meaning |", "| --- | --- | --- |"]
        for name, field in model.model_fields.items():
            doc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {_default(name, field)} | {doc} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference())
