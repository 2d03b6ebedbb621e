"""Configuration: typed, frozen models loaded once, with errors that name key paths."""

from failwell.config.load import load_config, parse_config, resolve_import
from failwell.config.models import (
    BackendConfig,
    BreakerConfig,
    FailwellConfig,
    GatewayConfig,
    ReplicaConfig,
    RetryConfig,
    RouteConfig,
    RouteKind,
    TierConfig,
    TierKind,
    WireProtocol,
)

__all__ = [
    "BackendConfig",
    "BreakerConfig",
    "FailwellConfig",
    "GatewayConfig",
    "ReplicaConfig",
    "RetryConfig",
    "RouteConfig",
    "RouteKind",
    "TierConfig",
    "TierKind",
    "WireProtocol",
    "load_config",
    "parse_config",
    "resolve_import",
]
