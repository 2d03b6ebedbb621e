"""Fault injection reaches managed replicas like configured ones: ``failwell fault`` on one
replica the supervisor started, and a drill whose steps kill a serving managed replica
(``managed:BACKEND``) and inject an in-gateway fault on the managed backend, then restore it (the drill runs in-process: ``failwell drill FILE`` runs the
same ``run_drill``)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import yaml
from typer.testing import CliRunner

from failwell.cli.main import app as cli
from failwell.drills.run import run_drill
from failwell.drills.spec import load_drill
from failwell.supervisor.runstate import state_file
from tests.integration.conftest import Stack, http_json, metric_value, wait_until
from tests.integration.test_supervisor import (
    managed_config,
    no_replica_left,
    server_command,
    settled,
    supervisor,
)

__all__ = ["no_replica_left"]  # the fixture that stops replicas a failed test left running


def test_faults_and_drill_steps_target_managed_replicas(stack: Stack, tmp_path: Path) -> None:
    gw = stack.gateway(managed_config(stack, server_command(), min=2, max=2))
    assert wait_until(lambda: settled(gw, 2), timeout=60, interval=0.2), supervisor(gw)
    victim = supervisor(gw)["replicas"][0]["name"]

    # One replica the supervisor started, by its label, through the CLI.
    added = CliRunner().invoke(cli, ["fault", "add", "error", "--backend", "echo",
                                     "--replica", victim, "--duration", "30s", "--gateway", gw.url])  # fmt: skip
    assert added.exit_code == 0 and "added f1" in added.output, added.output
    tiers = [
        http_json(gw.predict_url("echo"), {"inputs": {"x": f"{i}"}})["tier"] for i in range(20)
    ]
    assert tiers == ["primary"] * 20  # the other replica answers the retries
    text = gw.metrics()
    assert (metric_value(text, "failwell_faults_injected_total", backend="echo") or 0) > 0
    cleared = urllib.request.Request(f"{gw.url}/admin/faults", method="DELETE")
    with urllib.request.urlopen(cleared, timeout=5) as resp:
        assert json.load(resp)["cleared"]

    # A drill step on the whole managed backend: the later tier answers, then tier 1 is back.
    drill = {
        "name": "managed",
        "target": gw.url,
        "route": "echo",
        "tiers": ["primary", "static"],
        "load": {"rate": 40, "inputs": {"x": "u{i}"}},
        "warmup": "1s",
        "steps": [
            {"name": "a managed replica killed", "duration": "2s",
             "actions": [{"process": "kill", "replicas": ["managed:echo"]}],
             "expect": {"min_share": {"primary": 0.95}}},
            {"name": "managed backend errors", "duration": "2s",
             "actions": [{"gateway": {"kind": "error", "backend": "echo"}}],
             "expect": {"min_share": {"static": 0.9}}},
            {"name": "restore", "duration": "3s", "actions": [{"restore": True}],
             "expect": {"recover_within": "2s"}},
        ],
    }  # fmt: skip
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(drill))
    result = asyncio.run(run_drill(load_drill(path)))  # what ``failwell drill FILE`` runs
    assert result["verdict"] == "pass", (result["reasons"], result["steps"])
    assert result["failed"] == 0
    failed = [e for e in supervisor(gw)["events"] if e["event"] == "replica_failed"]
    assert [e["reason"] for e in failed] == ["exit"]  # the one the drill killed, replaced
    assert state_file(str(tmp_path / "replicas"), "echo").exists()  # still managed, same run
