"""A replicated, content-addressed model registry: versions, aliases, verify, restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from failwell.registry.registry import Registry
from failwell.registry.replication import ReplicaTarget
from failwell.registry.stores import FsspecStore, LocalStore

if TYPE_CHECKING:
    from failwell.config.registry import RegistryConfig


def open_registry(config: RegistryConfig) -> Registry:
    """The registry a config describes: its local primary and its replicas."""
    replicas = [
        ReplicaTarget(FsspecStore(s.url, s.name, dict(s.options)), s.mode) for s in config.replicas
    ]
    return Registry(LocalStore(config.path), replicas)


__all__ = ["Registry", "open_registry"]
