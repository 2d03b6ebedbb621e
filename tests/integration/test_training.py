"""`failwell train` on real processes: a job SIGKILLed mid-way resumes from its checkpoint and
ends with the same model parameters, byte for byte, as an uninterrupted run; a second job for the same
model is refused while one runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from failwell.config.registry import RegistryConfig
from failwell.registry import open_registry
from tests.integration.conftest import wait_until

PY = sys.executable


def setup(tmp: Path, name: str, delay: float) -> tuple[Path, Path]:
    """A job file and a gateway config with its own registry, under ``tmp/name``."""
    root = tmp / name
    root.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 3))
    y = (x @ np.array([1.5, -1.0, 0.5]) + rng.normal(0, 0.5, 3000) > 0).astype(int)
    lines = [
        json.dumps({"inputs": {"a": r[0], "b": r[1], "c": r[2]}, "label": int(t)})
        for r, t in zip(x.tolist(), y.tolist(), strict=True)
    ]
    (root / "data.jsonl").write_text("\n".join(lines))
    job = {
        "model": "scorer",
        "entry": "failwell.demo.trainer:train",
        "data": "data.jsonl",
        "seed": 3,
        "args": {"epochs": 4, "batch": 60, "step_delay": delay},
        "checkpoint": {"every_steps": 20},
    }
    (root / "job.yaml").write_text(yaml.safe_dump(job))
    config = {
        "registry": {"path": "registry"},
        "routes": {"r": {"input": {"x": "float"}, "tiers": [{"name": "s", "value": 1}]}},
    }
    (root / "failwell.yaml").write_text(yaml.safe_dump(config))
    return root / "job.yaml", root / "failwell.yaml"


def train(job: Path, config: Path) -> subprocess.Popen[str]:
    argv = [PY, "-m", "failwell", "train", str(job), "--config", str(config)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def model_bytes(config: Path) -> bytes:
    registry = open_registry(RegistryConfig(path=str(config.parent / "registry")))
    version = registry.resolve("scorer@v1")
    path = registry.checkout(version, config.parent / "checkouts")
    return (path / "params.json").read_bytes()


def test_a_killed_job_resumes_and_ends_with_the_same_model(tmp_path: Path) -> None:
    job, config = setup(tmp_path, "straight", delay=0.0)
    done = train(job, config)
    out, errors = done.communicate(timeout=120)
    assert done.returncode == 0, errors
    assert "scorer@v1" in out and "resumed" not in out
    reference = model_bytes(config)

    job, config = setup(tmp_path, "killed", delay=0.01)
    first = train(job, config)
    latest = list((config.parent / "registry").glob("checkpoints/scorer/*/latest"))
    assert wait_until(
        lambda: bool(list((config.parent / "registry").glob("checkpoints/scorer/*/latest"))), 60
    ), latest
    time.sleep(0.3)  # a few more steps, maybe another checkpoint
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert not list((config.parent / "registry").glob("names/**/v1*"))  # nothing registered
    again = train(job, config)
    out, errors = again.communicate(timeout=120)
    assert again.returncode == 0, errors
    assert "resumed from step" in out
    step = int(out.split("resumed from step ")[1].split(";")[0].split()[0])
    assert 0 < step < 200  # 4 epochs x 50 batches
    assert model_bytes(config) == reference
    # the job's checkpoints are gone once its version is registered
    assert not list((config.parent / "registry").glob("checkpoints/scorer/*/latest"))


def test_a_second_job_for_the_same_model_is_refused(tmp_path: Path) -> None:
    job, config = setup(tmp_path, "busy", delay=1.0)  # 200 steps: 200 s, killed long before
    first = train(job, config)
    try:
        assert wait_until(lambda: (config.parent / "registry" / "locks").exists(), 60)
        time.sleep(0.5)
        second = train(job, config)
        _, errors = second.communicate(timeout=60)
        assert second.returncode == 2 and "is running" in errors
    finally:
        first.kill()
        first.communicate(timeout=30)


def test_the_gate_rejects_a_candidate_trained_on_corrupted_labels(tmp_path: Path) -> None:
    job, config = setup(tmp_path, "gated", delay=0.0)
    spec = yaml.safe_load(job.read_text())
    spec["gate"] = {"metric": "holdout_auc", "tolerance": 0.02}
    job.write_text(yaml.safe_dump(spec))
    first = train(job, config)
    out, errors = first.communicate(timeout=120)
    assert first.returncode == 0, errors
    assert "gate passed: no production version to beat" in out
    registry = open_registry(RegistryConfig(path=str(config.parent / "registry")))
    registry.set_alias("scorer", "production", "v1")

    data = config.parent / "data.jsonl"
    rng = np.random.default_rng(9)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for row in rows:  # labels that say nothing about the inputs
        row["label"] = int(rng.integers(0, 2))
    data.write_text("\n".join(json.dumps(r) for r in rows))
    second = train(job, config)
    out, errors = second.communicate(timeout=120)
    assert second.returncode == 3, (out, errors)
    assert "gate REJECTED" in out and "worse than scorer@v1" in out
    verdict = registry.get("scorer", "v2").meta["gate"]
    assert verdict["passed"] is False and verdict["baseline"] == "scorer@v1"
    assert registry.aliases("scorer")["production"] == "v1"
