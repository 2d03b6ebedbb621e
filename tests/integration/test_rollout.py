"""Rollouts and hot swaps on a real gateway under steady load: a good candidate is promoted
through every step, bad ones (errors, slow, skewed outputs) roll back on their own, an alias
move swaps the served model; no client request fails in any of it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from failwell.config.registry import ReplicationMode
from failwell.registry import Registry
from failwell.registry.replication import ReplicaTarget
from failwell.registry.stores import FsspecStore, LocalStore
from failwell.testing.load import LoadResult
from tests.integration.conftest import (
    Gateway,
    Stack,
    background_load,
    http_json,
    metric_value,
    wait_until,
)

VERSIONS = {
    "v1": {"offset": 0.0},
    "v2": {"offset": 0.0, "note": "retrained"},
    "v3": {"offset": 0.0, "fail_rate": 0.5},
    "v4": {"offset": 0.0, "delay": 0.08},
    "v5": {"offset": 25.0},
}


def registry(tmp: Path) -> Registry:
    replica = FsspecStore(f"file://{tmp / 'replica'}", "standby")
    return Registry(LocalStore(tmp / "primary"), [ReplicaTarget(replica, ReplicationMode.SYNC)])


def push_versions(tmp: Path) -> Registry:
    reg = registry(tmp)
    for version, spec in VERSIONS.items():
        folder = tmp / "artifacts" / version
        folder.mkdir(parents=True)
        (folder / "tunable.json").write_text(json.dumps(spec))
        pushed = reg.push("scorer", folder, {"sample_inputs": [{"x": 1.0}, {"x": 2.5}]})
        assert pushed.version == version
    reg.set_alias("scorer", "production", "v1")
    return reg


def scorer_config(stack: Stack, tmp: Path) -> dict[str, Any]:
    """A ``score`` route whose primary tier serves ``scorer@production`` from the registry."""
    backends = {
        "scorer": {
            "protocol": "python",
            "target": "failwell.testing.models:Tunable",
            "model_ref": "scorer@production",
            "workers": 4,
            "timeout": "800ms",
        }
    }
    routes = {
        "score": {
            "input": {"x": "float"},
            "deadline": "2s",
            "tiers": [
                {"name": "primary", "backend": "scorer"},
                {"name": "static", "value": {"score": -1.0}},
            ],
        }
    }
    cfg = stack.config(backends, routes)
    cfg["registry"] = {
        "path": str(tmp / "primary"),
        "checkouts": str(tmp / "checkouts"),
        "watch": "200ms",
        "replicas": [{"name": "standby", "url": f"file://{tmp / 'replica'}"}],
    }
    return cfg


def start_gateway(stack: Stack, tmp: Path) -> Gateway:
    return stack.gateway(scorer_config(stack, tmp))


def x_body(i: int) -> dict[str, Any]:
    return {"inputs": {"x": (i % 50) / 10}}


@contextmanager
def steady_load(url: str, concurrency: int = 6) -> Iterator[LoadResult]:
    with background_load(url, x_body, concurrency) as result:
        yield result


def predict(gw: Gateway, x: float) -> dict[str, Any]:
    req = urllib.request.Request(
        gw.predict_url("score"),
        data=json.dumps({"inputs": {"x": x}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def rollout(gw: Gateway, candidate: str, **extra: Any) -> dict[str, Any]:
    body = {
        "route": "score",
        "tier": "primary",
        "candidate": candidate,
        "steps": [10, 50, 100],
        "step_time": "1s",
        **extra,
    }
    started = http_json(f"{gw.url}/admin/rollouts", body)
    assert started["state"] == "running"
    found: dict[str, Any] = {}

    def finished() -> bool:
        found.update(http_json(f"{gw.url}/admin/rollouts?route=score")["rollouts"][-1])
        return bool(found["state"] != "running")

    assert wait_until(finished, timeout=30, interval=0.1), found
    return found


def test_rollouts_promote_good_and_roll_back_bad_candidates_under_load(
    stack: Stack, tmp_path: Path
) -> None:
    reg = push_versions(tmp_path)
    gw = start_gateway(stack, tmp_path)
    assert predict(gw, 1.0)["model_version"] == "scorer@v1"
    figures: dict[str, float] = {}
    with steady_load(gw.predict_url("score")) as load:
        assert wait_until(lambda: len(load) > 50, timeout=10)
        for version, reason in (("v3", "error rate"), ("v4", "latency p99"), ("v5", "distance")):
            done = rollout(gw, f"scorer@{version}")
            assert done["state"] == "rolled_back", done
            assert reason in done["reason"], done
            figures[f"rollback_{version}"] = done["decisions"][-1]["seconds"]
        shadow = rollout(gw, "scorer@v5", shadow=True)
        assert shadow["state"] == "rolled_back" and "distance" in shadow["reason"], shadow
        good = rollout(gw, "scorer@v2")
        assert good["state"] == "promoted", good
        assert [d["weight"] for d in good["decisions"] if d["action"] == "step"] == [10, 50, 100]
        assert reg.aliases("scorer") == {"production": "v2", "previous": "v1"}
        assert predict(gw, 1.0)["model_version"] == "scorer@v2"

        # Hot swap: move the alias back; the watcher loads, warms and switches.
        moved = time.monotonic()
        assert reg.rollback("scorer") == ("v2", "v1")
        assert wait_until(lambda: predict(gw, 1.0)["model_version"] == "scorer@v1", timeout=10)
        figures["alias_to_serving"] = time.monotonic() - moved

        # A DR drill beside the serving gateway (scratch copy of the primary, from the replica).
        cmd = ["dr", "drill", "--json", "--config", str(gw.config_path)]
        drilled = subprocess.run(
            [sys.executable, "-m", "failwell", *cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert drilled.returncode == 0, drilled.stdout + drilled.stderr
        report = json.loads(drilled.stdout)
        assert report["restored"] == report["versions"] == len(VERSIONS)
        figures["dr_drill_recovery"] = report["recovery_seconds"]
        time.sleep(0.3)
    metrics = gw.metrics()
    assert metric_value(metrics, "failwell_rollouts_total", route="score", outcome="promoted") == 1
    assert metric_value(metrics, "failwell_rollouts_total", outcome="rolled_back") == 4
    swap = metric_value(metrics, "failwell_model_swap_seconds", backend="scorer")
    assert swap is not None
    figures["swap"] = swap
    assert len(load) > 500
    assert load.failed == [], load.failed[:5]
    assert set(load.tiers()) == {"primary"}  # every answer from the model tier
    print(f"\nrollout figures: {figures}, requests: {len(load)}, failed: {len(load.failed)}")


def test_rollout_abort_and_bad_requests(stack: Stack, tmp_path: Path) -> None:
    push_versions(tmp_path)
    gw = start_gateway(stack, tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "failwell", "rollout", *args, "--gateway", gw.url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    started = cli(
        "start", "score", "--tier", "primary", "--candidate", "scorer@v2", "--step-time", "60s"
    )
    assert started.returncode == 0 and "running" in started.stdout, started.stderr
    status = json.loads(cli("status", "score", "--json").stdout)
    assert status[0]["state"] == "running" and status[0]["weight"] == 0.05
    aborted = cli("abort", "score", "--reason", "testing abort")
    assert (
        aborted.returncode == 0
        and "aborted" in aborted.stdout
        and "testing abort" in aborted.stdout
    )
    again = cli("abort", "score")
    assert again.returncode == 1 and "no rollout running" in again.stderr
    body = {"route": "score", "tier": "primary", "candidate": "scorer@v2", "step_time": "60s"}
    assert predict(gw, 1.0)["model_version"] == "scorer@v1"
    for bad, field in (
        ({**body, "tier": "static"}, "tier"),
        ({**body, "candidate": "scorer@v99"}, "candidate"),
        ({**body, "steps": [50, 10]}, "steps"),
        ({**body, "route": "nope"}, "route"),
    ):
        req = urllib.request.Request(
            f"{gw.url}/admin/rollouts",
            data=json.dumps(bad).encode(),
            headers={"content-type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 422
        assert json.loads(err.value.read())["error"]["field"] == field
