"""A real Prometheus scrapes a real gateway and evaluates the shipped rules against it."""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from failwell.demo.procs import ManagedProcess
from tests.integration.conftest import Stack, free_port, http_json, wait_until
from tests.integration.observed import observed_config

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"


def query(base: str, promql: str) -> list[dict[str, Any]]:
    doc = http_json(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def rules_evaluated(base: str) -> bool:
    groups = http_json(f"{base}/api/v1/rules")["data"]["groups"]
    evaluated = [r for g in groups if g["name"] != "failwell-slo-recording" for r in g["rules"]]
    return bool(evaluated) and all(r["health"] == "ok" for r in evaluated)


def test_prometheus_scrapes_the_gateway_and_evaluates_the_rules(stack: Stack) -> None:
    if not shutil.which(PROMETHEUS):
        pytest.fail("prometheus missing: scripts/setup.sh installs Debian's prometheus")
    m1 = stack.model_server(label="m1")
    gw = stack.gateway(observed_config(stack, [m1]))
    for i in range(20):
        req = urllib.request.Request(
            gw.predict_url("echo"),
            data=f'{{"inputs": {{"user_id": "u{i}"}}}}'.encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy/prometheus/failwell-rules.yml")],
        "scrape_configs": [
            {"job_name": "failwell", "static_configs": [{"targets": [f"127.0.0.1:{gw.port}"]}]}
        ],
    }
    path = stack.tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    prom = ManagedProcess("prometheus", log_file=stack.tmp / "prometheus.log")
    prom.start(
        [
            PROMETHEUS,
            f"--config.file={path}",
            f"--storage.tsdb.path={stack.tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        ready_url=f"http://127.0.0.1:{port}/-/ready",
        timeout=30,
    )
    stack.procs.append(prom)
    base = f"http://127.0.0.1:{port}"

    assert wait_until(lambda: query(base, 'up{job="failwell"} == 1') != [], 20, 0.5)
    assert wait_until(
        lambda: query(base, 'failwell_slo_events_total{route="echo",kind="total"} > 0') != [],
        20,
        0.5,
    )
    tiers = query(base, 'sum by (tier) (failwell_requests_total{route="echo"})')
    assert {r["metric"]["tier"] for r in tiers} == {"primary"}
    assert query(base, 'failwell_replica_healthy{replica="m1"} == 1')
    assert query(base, 'failwell_slo_objective_ratio{route="echo",slo="availability"}')
    assert wait_until(lambda: rules_evaluated(base), 20, 0.5), http_json(f"{base}/api/v1/rules")
