"""A config reload rebuilds pools and routes through the composition root, and every control
set on the running gateway still applies to what it rebuilt: a tier switched off by a flag, a
fault on a rebuilt backend, a route's admission limit, the SLO windows, the canaries, and the
breakers of an unchanged backend. Real model servers, a real gateway, steady load throughout."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import yaml

from tests.integration.conftest import Gateway, Stack, http_json, metric_value, wait_until
from tests.integration.test_rollout import steady_load


def config(stack: Stack, replicas: list[dict[str, Any]], deadline: str, timeout: str) -> Any:
    cfg = stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "model": "ranker",  # the demo server's v2 name; without --model-dir it echoes
                "timeout": "200ms",
                "replicas": replicas,
                "retry": {"attempts": 2, "backoff": "2ms", "max_backoff": "5ms"},
                "breaker": {"failure_threshold": 3, "recovery": "60s"},
            },
            "light": {
                "protocol": "python",
                "target": "failwell.testing.models:Echo",
                "timeout": timeout,
            },
        },
        routes={
            "r": {
                "input": {"x": "float"},
                "deadline": deadline,
                "canary": {
                    "interval": "200ms",
                    "latency_budget": "200ms",
                    "checks": [{"inputs": {"x": 1.0}, "expect": {"x": 1.0}}],
                },
                "slo": {
                    "availability": 0.99,
                    "windows": [{"long": "60s", "short": "5s", "burn_rate": 2}],
                },
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "fallback", "backend": "light"},
                    {"name": "static", "value": 1},
                ],
            },
            "a": {
                "input": {"x": "float"},
                "admission": {"rate": {"rate": 0.5, "burst": 2}},
                "tiers": [{"name": "static", "value": 2}],
            },
        },
    )
    cfg["control"] = {"flags_path": ":memory:"}
    return cfg


def post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def refused(gw: Gateway, n: int = 8) -> int:
    """Of ``n`` back-to-back requests on the rate-limited route, how many got a 429."""
    return sum(post(gw.predict_url("a"), {"inputs": {"x": 1.0}})[0] == 429 for _ in range(n))


def counter(gw: Gateway, name: str, **labels: str) -> float:
    return metric_value(gw.metrics(), name, **labels) or 0.0


def test_reload_keeps_flags_faults_limits_slo_windows_canaries_and_breakers(stack: Stack) -> None:
    m1, m2 = stack.model_server(label="m1"), stack.model_server(label="m2")
    replicas = [m1.replica(), m2.replica()]
    first = config(stack, replicas, deadline="500ms", timeout="1s")
    gw = stack.gateway(first)
    open_ = float(2)  # BreakerState.OPEN

    with steady_load(gw.predict_url("r")) as load:
        assert wait_until(lambda: len(load) > 20, timeout=10)
        # A replica dies: its breaker opens (recovery 60 s, so it stays open).
        m2.kill()
        assert wait_until(
            lambda: (
                metric_value(gw.metrics(), "failwell_breaker_state", backend="ranker", replica="m2")
                == open_
            ),
            timeout=10,
        )
        # The operator's controls: tier 1 switched off, the fallback backend failing.
        assert post(f"{gw.url}/admin/flags", {"target": "tier:r/primary", "on": False})[0] == 200
        fault = {"kind": "error", "backend": "light", "duration": "120s"}
        assert post(f"{gw.url}/admin/faults", fault)[0] == 201
        settled = time.monotonic() + 0.3
        assert wait_until(lambda: load.since(settled).tiers().keys() == {"static"}, timeout=10)
        assert refused(gw) >= 4
        assert wait_until(
            lambda: http_json(f"{gw.url}/health/inference")["status"] == "degraded", 10
        )
        slo_before = counter(gw, "failwell_slo_requests_total", route="r")
        canaries_before = counter(gw, "failwell_canary_checks_total", route="r", result="pass")
        assert slo_before > 20 and canaries_before > 0

        # Reload: a route's deadline and the fallback backend's timeout change.
        new = config(stack, replicas, deadline="400ms", timeout="900ms")
        new["gateway"] = first["gateway"]
        gw.config_path.write_text(yaml.safe_dump(new, sort_keys=False))
        reloaded_at = time.monotonic()
        status, result = post(f"{gw.url}/admin/config/reload", {})
        assert status == 200, result
        assert result["result"] == "applied" and result["rebuilt"] == ["light"]
        assert result["needs_restart"] == []
        time.sleep(2.0)

        after = load.since(reloaded_at)
        # The flag and the fault still apply: the rebuilt fallback is faulted, tier 1 is off.
        assert len(after) > 20 and after.tiers().keys() == {"static"}, after.tiers()
        flags = http_json(f"{gw.url}/admin/flags")
        assert flags["off"] == ["tier:r/primary"]
        assert [f["backend"] for f in http_json(f"{gw.url}/admin/faults")["faults"]] == ["light"]
        assert counter(gw, "failwell_faults_injected_total", backend="light", kind="error") > 0
        # The admission limit still applies.
        assert refused(gw) >= 4
        # The SLO window carried over (counts kept and growing) and the canary keeps running.
        assert counter(gw, "failwell_slo_requests_total", route="r") > slo_before
        assert (
            counter(gw, "failwell_canary_checks_total", route="r", result="pass") > canaries_before
        )
        assert (
            http_json(f"{gw.url}/health/inference")["routes"]["r"]["status"] == "degraded"
        )  # m2 is dead
        # The unchanged backend kept its pool: m2's breaker is still open, m1's closed.
        metrics = gw.metrics()
        assert (
            metric_value(metrics, "failwell_breaker_state", backend="ranker", replica="m2") == open_
        )
        assert metric_value(metrics, "failwell_breaker_state", backend="ranker", replica="m1") == 0
        status_doc = http_json(f"{gw.url}/admin/status")
        assert status_doc["routes"]["r"]["deadline_ms"] == 400

        # Switching tier 1 back on reaches the kept pool through the rebuilt route.
        assert post(f"{gw.url}/admin/flags", {"target": "tier:r/primary", "on": True})[0] == 200
        back = time.monotonic() + 0.3
        assert wait_until(lambda: load.since(back).share("primary") > 0.9, timeout=10)

    assert load.failed == [], load.failed[:3]
