"""The shipped Prometheus rules and Grafana dashboard are generated from the code, use only
metrics a gateway exports, and pass promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from failwell.api.app import App
from failwell.config import parse_config
from failwell.gateway import Gateway
from failwell.observe.deploy import FILES, dashboard, rules

ROOT = Path(__file__).resolve().parents[3]
CONFIG = {
    "gateway": {"cache": {"path": ":memory:"}},
    "backends": {
        "m": {
            "protocol": "v2",
            "replicas": [{"url": "http://127.0.0.1:1"}],
            "health": {"interval": "1s"},
        }
    },
    "routes": {
        "r": {
            "input": {"x": "str"},
            "canary": {"checks": [{"inputs": {"x": "a"}}]},
            "slo": {"quality": 0.9, "tier1_floor": 0.5, "latency_p99": "100ms"},
            "tiers": [{"name": "primary", "backend": "m"}, {"name": "static", "value": 1}],
        }
    },
}


def exported_names() -> set[str]:
    gateway = Gateway(parse_config(CONFIG, resolve=False))
    App(gateway)
    names = set()
    for family in gateway.metrics.registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
    return names


def used_names() -> set[str]:
    exprs = [r["expr"] for g in rules()["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    return {n for e in exprs for n in re.findall(r"\bfailwell_[a-z0-9_]+", e)}


def test_deploy_files_are_current() -> None:
    for rel, render in FILES.items():
        assert (ROOT / rel).read_text() == render(), "regenerate: python -m failwell.observe.deploy"


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    used, exported = used_names(), exported_names()
    assert len(used) >= 15
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    json.loads((ROOT / "deploy/grafana/failwell-dashboard.json").read_text())


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh installs Debian's prometheus"
    out = subprocess.run(
        [promtool, "check", "rules", str(ROOT / "deploy/prometheus/failwell-rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_runbook_in_operations_doc() -> None:
    text = (ROOT / "docs/operations.md").read_text().lower()
    for group in rules()["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert f"### {rule['alert'].lower()}" in text, rule["alert"]
