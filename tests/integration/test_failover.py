"""The fallback chain under steady concurrent load, with real model servers broken for real:
SIGKILL, SIGSTOP, a whole zone lost, and the recovery after each."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from failwell.testing.load import LoadResult, run_load
from tests.integration.conftest import Stack, light_ranker, metric_value

INPUT = {"user_id": "u0042", "country": "DE", "category": "books"}


def body(i: int) -> dict[str, Any]:
    return {"inputs": {**INPUT, "user_id": f"u{i % 500:04d}"}}


def ranker_config(
    stack: Stack,
    replicas: list[dict[str, Any]],
    models: Path,
    fallback: dict[str, Any] | None = None,
    deadline: str = "500ms",
    timeout: str = "250ms",
) -> dict[str, Any]:
    return stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": timeout,
                "replicas": replicas,
                "retry": {"attempts": 2, "backoff": "2ms", "max_backoff": "10ms"},
                "breaker": {"failure_threshold": 3, "recovery": "2s"},
            },
            "light": fallback or light_ranker(models),
        },
        routes={
            "recommend": {
                "input": {"user_id": "str", "country": "str", "category": "str"},
                "deadline": deadline,
                "cache": {"key": "{user_id}:{category}"},
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "fallback", "backend": "light"},
                    {"name": "rules", "rules": "failwell.demo.rules:popular"},
                    {"name": "cache"},
                    {"name": "static", "value": {"items": list(range(1, 21))}},
                ],
            }
        },
    )


async def load_during(
    url: str, seconds: float, action: Any = None, at: float = 1.0, concurrency: int = 8
) -> tuple[LoadResult, float]:
    """Run load for ``seconds``; call ``action()`` ``at`` seconds in. Returns the records and
    the monotonic time the action ran."""
    result = LoadResult()
    task = asyncio.create_task(
        run_load(url, body, concurrency=concurrency, duration=seconds, sink=result)
    )
    await asyncio.sleep(at)
    acted = time.monotonic()
    if action is not None:
        await asyncio.to_thread(action)
    await task
    return result, acted


def test_one_replica_killed_under_load(stack: Stack, models: Path) -> None:
    a = stack.model_server(model_dir=models, label="a")
    b = stack.model_server(model_dir=models, label="b")
    gw = stack.gateway(ranker_config(stack, [a.replica(), b.replica()], models))
    result, killed = asyncio.run(load_during(gw.predict_url("recommend"), 4.0, a.kill))
    assert len(result) > 200
    assert result.failed == []
    assert result.share("primary") >= 0.99, result.tiers()
    assert len(result.since(killed + 0.5)) > 50


def test_both_replicas_killed_then_restarted(stack: Stack, models: Path) -> None:
    a = stack.model_server(model_dir=models, label="a")
    b = stack.model_server(model_dir=models, label="b")
    gw = stack.gateway(ranker_config(stack, [a.replica(), b.replica()], models))

    def kill_both() -> None:
        a.kill()
        b.kill()

    result, killed = asyncio.run(load_during(gw.predict_url("recommend"), 3.0, kill_both))
    assert result.failed == []
    after = result.since(killed + 0.3)
    assert after.share("fallback") >= 0.95, after.tiers()
    metrics = gw.metrics()
    for replica in (a, b):
        assert (
            metric_value(metrics, "failwell_breaker_state", backend="ranker", replica=replica.label)
            == 2.0
        )

    a.restart()
    b.restart()
    restarted = time.monotonic()
    result, _ = asyncio.run(load_during(gw.predict_url("recommend"), 4.0, at=0))
    assert result.failed == []
    # recovery time (2s) plus one probe: tier 1 answers again from then on
    back = result.since(restarted + 2.0 + 0.5)
    assert len(back) > 50 and back.share("primary") >= 0.99, back.tiers()


def test_every_model_hung_still_answers_within_deadline(stack: Stack, models: Path) -> None:
    a = stack.model_server(model_dir=models, label="a")
    b = stack.model_server(model_dir=models, label="b")
    hung_fallback = {
        "protocol": "python",
        "target": "failwell.testing.models:Echo",
        "args": {"delay": 30.0},
        "workers": 64,
    }
    config = ranker_config(
        stack, [a.replica(), b.replica()], models, hung_fallback, "150ms", "80ms"
    )
    gw = stack.gateway(config)
    a.signal(signal.SIGSTOP)
    b.signal(signal.SIGSTOP)
    try:
        result, _ = asyncio.run(load_during(gw.predict_url("recommend"), 3.0, at=0))
    finally:
        a.signal(signal.SIGCONT)
        b.signal(signal.SIGCONT)
    assert len(result) > 50 and result.failed == []
    assert set(result.tiers()) <= {"rules", "cache", "static"}, result.tiers()
    slowest = max(r.latency for r in result.records)
    assert slowest <= 0.150 + 0.050, f"slowest answer took {slowest * 1000:.0f}ms"


def test_primary_zone_lost_standby_serves_and_gives_back(stack: Stack, models: Path) -> None:
    east1 = stack.model_server(model_dir=models, label="east1")
    east2 = stack.model_server(model_dir=models, label="east2")
    west = stack.model_server(model_dir=models, label="west")
    replicas = [
        east1.replica(zone="east"),
        east2.replica(zone="east"),
        west.replica(zone="west", priority=1),
    ]
    gw = stack.gateway(ranker_config(stack, replicas, models))
    result, _ = asyncio.run(load_during(gw.predict_url("recommend"), 1.5, at=0))
    assert west.requests() == 0  # the standby takes nothing while east is healthy

    def lose_east() -> None:
        east1.kill()
        east2.kill()

    result, lost = asyncio.run(load_during(gw.predict_url("recommend"), 3.0, lose_east))
    assert result.failed == []
    after = result.since(lost + 0.3)
    assert after.share("primary") >= 0.99, after.tiers()
    served_by_west = west.requests()
    assert served_by_west > 50

    east1.restart()
    east2.restart()
    result, _ = asyncio.run(load_during(gw.predict_url("recommend"), 4.0, at=0))
    assert result.failed == []
    before = west.requests()
    asyncio.run(run_load(gw.predict_url("recommend"), body, concurrency=8, duration=1.0))
    assert west.requests() == before  # east took its traffic back


@pytest.mark.parametrize("mode", ["error", "malformed", "close"])
def test_broken_answers_fall_back_and_open_the_breaker(
    stack: Stack, models: Path, mode: str
) -> None:
    a = stack.model_server(model_dir=models, label="a")
    gw = stack.gateway(ranker_config(stack, [a.replica()], models))
    a.control(mode)
    result, _ = asyncio.run(load_during(gw.predict_url("recommend"), 1.5, at=0))
    assert result.failed == []
    assert result.share("fallback") >= 0.95, result.tiers()
    metrics = gw.metrics()
    assert metric_value(metrics, "failwell_breaker_state", backend="ranker", replica=a.label) == 2.0
    kind = {"error": "status", "malformed": "malformed", "close": "unavailable"}[mode]
    fallbacks = metric_value(
        metrics, "failwell_fallbacks_total", route="recommend", from_tier="primary", error=kind
    )
    assert fallbacks is not None and fallbacks >= 1
