"""Configuration: typed, frozen models loaded once, with errors that name key paths."""

from failwell.config.backends import (
    BackendConfig,
    BreakerConfig,
    ReplicaConfig,
    RetryConfig,
    WireProtocol,
)
from failwell.config.load import load_config, parse_config, resolve_import
from failwell.config.models import (
    FailwellConfig,
    GatewayConfig,
    RouteConfig,
    RouteKind,
    TierConfig,
    TierKind,
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
