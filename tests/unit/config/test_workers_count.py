"""How many workers ``failwell serve`` runs, and what it refuses to run with many."""

from __future__ import annotations

from typing import Any

import pytest

from failwell.cli.workers import worker_count
from failwell.config import parse_config
from failwell.errors import ConfigError


def config(**extra: Any) -> Any:
    base: dict[str, Any] = {
        "backends": {"m": {"protocol": "v2", "replicas": [{"url": "http://127.0.0.1:9"}]}},
        "routes": {"r": {"input": {"x": "str"}, "tiers": [{"name": "p", "backend": "m"}]}},
    }
    return parse_config({**base, **extra})


def test_the_default_is_one_without_a_fleet_and_one_per_core_with_one() -> None:
    assert worker_count(config(), None) == 1
    assert worker_count(config(fleet={"redis": "redis://127.0.0.1:6379/0"}), None) >= 1
    assert worker_count(config(), 1) == 1


def test_many_workers_are_refused_with_the_key_that_prevents_them() -> None:
    with pytest.raises(ConfigError) as found:
        worker_count(config(log={"enabled": True}), 2)
    paths = {issue.path for issue in found.value.issues}
    assert paths == {"fleet", "log.backend"}
    with pytest.raises(ConfigError):
        worker_count(config(), 0)
