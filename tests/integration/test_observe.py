"""Readiness, canaries, active probes, metrics and burn alerts against real model servers that
are broken for real (wrong answers while alive, then SIGKILL)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from typer.testing import CliRunner

from failwell.cli.main import app
from tests.integration.conftest import Gateway, Stack, http_json, metric_value, wait_until
from tests.integration.observed import feed, observed_config, replica_healthy, webhook


def get(url: str) -> tuple[int, Any]:
    try:
        return 200, http_json(url)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def predict(gw: Gateway, i: int) -> dict[str, Any]:
    req = urllib.request.Request(
        gw.predict_url("echo"),
        data=f'{{"inputs": {{"user_id": "u{i}"}}}}'.encode(),
        headers={"content-type": "application/json", "x-request-id": f"req-{i}"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["x-request-id"] == f"req-{i}"
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def inference_status(gw: Gateway) -> str:
    return str(get(f"{gw.url}/health/inference")[1]["status"])


def test_health_canary_metrics_and_alerts_follow_real_failures(stack: Stack) -> None:
    m1, m2 = stack.model_server(label="m1"), stack.model_server(label="m2")
    with webhook() as hook:
        gw = stack.gateway(observed_config(stack, [m1, m2], hook.url))

        # Healthy: ready, canaries pass, tier 1 answers.
        assert wait_until(lambda: get(f"{gw.url}/health/ready")[0] == 200, 10)
        assert wait_until(lambda: inference_status(gw) == "healthy", 10)
        assert predict(gw, 1)["tier"] == "primary"
        shown = CliRunner().invoke(app, ["status", "--url", gw.url, "--window", "60"])
        assert shown.exit_code == 0, shown.output
        assert "echo" in shown.output and "m2" in shown.output and "ready" in shown.output

        # Alive but wrong: m1's inference breaks while its liveness passes; its canary fails
        # and takes it out of rotation; the route is degraded, not down.
        requests_before = m1.requests()
        m1.control("error", status=500)
        assert wait_until(lambda: not replica_healthy(gw, "m1"), 10)
        assert inference_status(gw) == "degraded"
        status, ready = get(f"{gw.url}/health/ready")
        assert status == 200 and ready["checks"]["route:echo"]["available_replicas"] == ["m2"]
        served = m2.requests()
        for i in range(20):  # m1 is out of rotation: m2 answers every request, no fallback
            assert predict(gw, 100 + i)["tier"] == "primary"
        assert m2.requests() - served >= 20
        # Probing /health/inference does not reach a model: only the scheduled canaries do.
        seen = m2.requests()
        for _ in range(30):
            get(f"{gw.url}/health/inference")
        assert m2.requests() - seen < 10  # canaries only (every 300 ms), not 30 probes
        m1.control("ok")
        assert wait_until(lambda: replica_healthy(gw, "m1"), 10)
        assert m1.requests() > requests_before

        # Both primaries killed: probes mark them down, readiness says why, the canary is
        # unhealthy, the static tier answers, and alerts fire once each.
        for i in range(10):
            predict(gw, i)
        m1.kill()
        m2.kill()
        # Still ready (later tiers answer) and degraded; the tier-1 check says why.
        tier1 = f"{gw.url}/health/ready?tier1=true"
        assert wait_until(lambda: get(tier1)[0] == 503, 10)
        ready = get(tier1)[1]
        assert ready["checks"]["route:echo"]["ok"] is False
        assert "no replica in rotation" in ready["checks"]["route:echo"]["error"]
        status, ready = get(f"{gw.url}/health/ready")
        assert status == 200 and ready["degraded_routes"] == ["echo"]
        assert wait_until(lambda: inference_status(gw) == "unhealthy", 10)
        answers = [predict(gw, 1000 + i)["tier"] for i in range(40)]
        assert set(answers) == {"static"}
        assert wait_until(lambda: bool(hook.events("failwell_tier1_floor", "firing")), 10)
        assert wait_until(lambda: bool(hook.events("failwell_quality_burn", "firing")), 10)
        for i in range(40):  # keep burning across several evaluations: still one notification
            predict(gw, 2000 + i)
        wait_until(lambda: False, 1.5)
        assert len(hook.events("failwell_tier1_floor", "firing")) == 1
        assert len(hook.events("failwell_quality_burn", "firing")) == 1
        doc = feed(gw)
        assert {a["alert"] for a in doc["alerts"]["firing"]} >= {
            "failwell_tier1_floor",
            "failwell_quality_burn",
        }
        assert doc["routes"]["echo"]["slo"]["quality"]["budget_remaining"] < 1

        text = gw.metrics()
        assert metric_value(text, "failwell_replica_healthy", backend="echo", replica="m1") == 0
        assert metric_value(text, "failwell_canary_status", route="echo") == 0
        assert metric_value(text, "failwell_alert_firing", route="echo", slo="tier1_floor") == 1
        assert (metric_value(text, "failwell_probes_total", backend="echo", result="fail") or 0) > 0
        assert (
            metric_value(text, "failwell_slo_events_total", route="echo", slo="quality", kind="bad")
            or 0
        ) >= 80
        assert metric_value(text, "failwell_model_version_info", route="echo", version="echo") == 1
        assert (
            metric_value(text, "failwell_cache_lookups_total", route="echo", result="cache_miss")
            or 0
        ) > 0
        assert "failwell_replica_outstanding_requests" in text
