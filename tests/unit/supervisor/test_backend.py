"""Managed replicas: their config is checked with key paths, and a running pool gains and
loses replicas in one synchronous step."""

from __future__ import annotations

from typing import Any

import pytest

from failwell.config import parse_config
from failwell.contracts import Request, Result
from failwell.errors import ConfigError
from failwell.resilience.breaker import Breaker
from failwell.resilience.retry import RetryPolicy
from failwell.routing.pool import Pool, Replica
from failwell.testing.fakes import FakeAdapter


def config(**managed: Any) -> dict[str, Any]:
    return {
        "backends": {
            "m": {
                "protocol": "v2",
                "managed": {"command": "serve --port {port}", "ports": [9100, 9109], **managed},
            }
        },
        "routes": {"r": {"input": {"x": "str"}, "tiers": [{"name": "p", "backend": "m"}]}},
    }


def errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, resolve=False)
    return [str(i) for i in info.value.issues]


def test_a_managed_backend_needs_no_replicas_and_splits_a_string_command() -> None:
    managed = parse_config(config(), resolve=False).backends["m"].managed
    assert managed is not None
    assert managed.command == ("serve", "--port", "{port}")
    assert managed.argv(9101) == ["serve", "--port", "9101"]
    assert (managed.min, managed.max, managed.standby) == (2, 4, 0)


@pytest.mark.parametrize(
    ("managed", "message"),
    [
        ({"command": "serve"}, "{port}"),
        ({"min": 3, "max": 2}, "min (3) is above max (2)"),
        ({"ports": [9100, 9102]}, "needs 5"),
        ({"ports": [0, 10]}, "within 1-65535"),
    ],
)
def test_bad_managed_config_is_named_by_key_path(managed: dict[str, Any], message: str) -> None:
    found = errors(config(**managed))
    assert any(e.startswith("backends.m.managed") and message in e for e in found), found


def test_python_backend_takes_no_managed_section() -> None:
    data = config()
    data["backends"]["m"] = {
        "protocol": "python",
        "target": "a:b",
        "managed": {"command": "x {port}", "ports": [1, 9]},
    }
    assert any("takes no 'managed'" in e for e in errors(data))


async def never(request: Request, timeout: float) -> Result:
    raise AssertionError("not called")


def replica(label: str, priority: int = 0) -> Replica:
    return Replica(label, FakeAdapter(never), Breaker(), priority)


def test_pool_add_and_remove_swap_the_groups() -> None:
    a, b, standby = replica("a"), replica("b"), replica("s", priority=1)
    pool = Pool("m", [a, standby], RetryPolicy(1, 0, 0), 1.0)
    before = pool.groups
    pool.add(b)
    assert pool.replicas == [a, standby, b]
    assert pool.groups == [[a, b], [standby]]
    assert before == [[a], [standby]]  # a pick that read the old groups keeps a whole view
    pool.add(b)
    assert pool.replicas.count(b) == 1
    assert pool.remove(a) is True and pool.remove(a) is False
    assert pool.groups == [[b], [standby]]
    assert pool.pick() is b
    pool.remove(b)
    assert pool.pick() is standby
