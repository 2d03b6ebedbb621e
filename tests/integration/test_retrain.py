"""The retraining loop on a real gateway under steady load, with `failwell train` as a child
process: a feature drifts, the monitor alarms, the loop trains a candidate, which passes its gate but fails under live traffic and the
canary rolls it back; the next cycle's candidate is promoted, the drift monitor switches to its
reference, and no client request fails in any of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from typer.testing import CliRunner

from failwell.cli.drift import reference_json
from failwell.cli.main import app
from failwell.config.registry import RegistryConfig
from failwell.registry import open_registry
from failwell.training.runner import load_job, run_job
from tests.integration.conftest import (
    Stack,
    background_load,
    http_json,
    metric_value,
    wait_until,
)

SHIFT = 2.0


def write_data(path: Path, seed: int, shift: float, n: int = 1500) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    y = (1.5 * (a - shift) - b + rng.normal(0, 0.5, n) > 0).astype(int)
    rows = [
        {"inputs": {"a": float(x), "b": float(z)}, "label": int(t)}
        for x, z, t in zip(a, b, y, strict=True)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))


def job_file(root: Path, data: str, **args: Any) -> Path:
    job = {
        "model": "scorer",
        "entry": "failwell.demo.trainer:train",
        "data": data,
        "seed": 1,
        "args": {"epochs": 2, "batch": 100, **args},
        "checkpoint": {"every_steps": 4},
        "gate": {"metric": "holdout_auc", "tolerance": 0.05},
    }
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def events(url: str, cycle: int | None = None) -> list[dict[str, Any]]:
    timeline = http_json(url)["timeline"]
    return [e for e in timeline if cycle is None or e["cycle"] == cycle]


def decision(url: str, cycle: int) -> str | None:
    found = [e for e in events(url, cycle) if e["event"] == "decision"]
    return found[0]["decision"] if found else None


def test_drift_retrains_rolls_back_a_bad_candidate_and_promotes_a_good_one(
    stack: Stack, tmp_path: Path
) -> None:
    registry_cfg = RegistryConfig(path=str(tmp_path / "registry"))
    write_data(tmp_path / "old.jsonl", 0, 0.0)
    first = job_file(tmp_path, "old.jsonl")
    v1, _ = run_job(load_job(first), registry_cfg, describe=reference_json)
    registry = open_registry(registry_cfg)
    registry.set_alias("scorer", "production", v1.version)
    assert "a" in v1.meta["reference"]["features"]

    write_data(tmp_path / "new.jsonl", 1, SHIFT)  # the labelled data of the new regime
    # the first candidate passes its gate but fails a fifth of its calls under traffic
    job_file(tmp_path, "new.jsonl", serve={"fail_rate": 0.2})
    backends = {
        "scorer": {
            "protocol": "python",
            "target": "failwell.demo.trainer:Scorer",
            "model_ref": "scorer@production",
            "workers": 2,
        }
    }
    routes = {
        "r": {
            "input": {"a": "float", "b": "float"},
            "deadline": "2s",
            "drift": {"window": 200, "min_samples": 100, "every": "200ms"},
            "retrain": {
                "job": "job.yaml",
                "every": "200ms",
                "cooldown": "0s",
                "max_per_day": 2,
                "timeout": "60s",
                "canary": {
                    "steps": [50, 100],
                    "step_time": "1s",
                    "min_requests": 10,
                    "max_distance": 1.0,
                },
            },
            "tiers": [
                {"name": "model", "backend": "scorer"},
                {"name": "static", "value": {"score": 0.5, "label": 0}},
            ],
        }
    }
    config = stack.config(backends, routes)
    config["registry"] = {
        "path": str(tmp_path / "registry"),
        "checkouts": str(tmp_path / "checkouts"),
        "watch": "200ms",
    }
    config["log"] = {"enabled": True, "path": str(tmp_path / "log")}
    gw = stack.gateway(config)
    loop, drift = f"{gw.url}/admin/retrain", f"{gw.url}/admin/drift"
    rng = np.random.default_rng(5)
    shifted = [{"inputs": {"a": float(x), "b": float(z)}} for x, z in rng.normal(0, 1, (4000, 2))]
    for row in shifted:
        row["inputs"]["a"] += SHIFT

    with background_load(gw.predict_url("r"), lambda i: shifted[i % len(shifted)], 4) as load:
        # drift → trigger → job → gate passed → canary → rolled back (errors under traffic)
        assert wait_until(lambda: decision(loop, 1) is not None, 60), events(loop)
        # the next cycle trains a well-behaved candidate
        job_file(tmp_path, "new.jsonl")
        assert decision(loop, 1) == "rolled_back", events(loop, 1)
        assert wait_until(lambda: decision(loop, 2) is not None, 60), events(loop)
        assert decision(loop, 2) == "promoted", events(loop, 2)
        # the monitor now judges against the promoted version's reference: no drift
        assert wait_until(
            lambda: http_json(drift)["routes"]["r"]["reference_version"] == "scorer@v3", 10
        )
        assert wait_until(lambda: "a" in http_json(drift)["routes"]["r"]["features"], 10)
        assert http_json(drift)["routes"]["r"]["drifting"] == []

    first_cycle = [e["event"] for e in events(loop, 1)]
    assert first_cycle[:3] == ["trigger", "job_started", "checkpoint"], first_cycle
    assert first_cycle[-4:] == ["job_ended", "gate", "canary_started", "decision"], first_cycle
    ended = next(e for e in events(loop, 1) if e["event"] == "job_ended")
    assert ended["version"] == "scorer@v2"
    gate = next(e for e in events(loop, 1) if e["event"] == "gate")
    assert gate["passed"] and gate["baseline"] == "scorer@v1"
    assert "error rate" in next(e for e in events(loop, 1) if e["event"] == "decision")["reason"]
    assert registry.aliases("scorer")["production"] == "v3"
    feed = http_json(f"{gw.url}/dashboard/feed")["retrain"]  # the dashboard's timeline
    assert feed["routes"]["r"]["last"]["decision"] == "promoted"
    assert [e["event"] for e in feed["timeline"]] == [e["event"] for e in events(loop)]
    shown = CliRunner().invoke(app, ["status", "--url", gw.url, "--window", "60"])
    assert shown.exit_code == 0, shown.output
    assert "Retraining" in shown.output and "promoted scorer@v3" in shown.output, shown.output
    assert load.failed == [] and len(load) > 100
    # every step is in the audit log, naming its cause
    audit = "".join(p.read_text() for p in (tmp_path / "log").rglob("*") if p.is_file())
    for action in ("retrain.trigger", "retrain.checkpoint", "retrain.gate", "retrain.decision"):
        assert f'"{action}"' in audit, action
    assert '"rollout.promoted"' in audit and '"rollout.rolled_back"' in audit
    # and counted in /metrics
    text = gw.metrics()
    assert metric_value(text, "failwell_retrain_jobs_total", route="r", outcome="registered") == 2
    passed = metric_value(text, "failwell_retrain_gate_verdicts_total", route="r", verdict="passed")
    assert passed == 2
    for decided in ("rolled_back", "promoted"):
        rollouts = metric_value(
            text, "failwell_retrain_rollouts_total", route="r", decision=decided
        )
        assert rollouts == 1, decided
    signals = [e["cause"]["signal"] for e in events(loop) if e["event"] == "trigger"]
    assert len(signals) == 2
    for signal in set(signals):
        started = metric_value(
            text, "failwell_retrain_triggers_total", route="r", signal=signal, outcome="started"
        )
        assert started == signals.count(signal), signal
