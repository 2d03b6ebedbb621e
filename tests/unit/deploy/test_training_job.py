"""The shipped training Job is generated from examples/retrain.yaml, passes the Kubernetes
schemas (kubernetes-validate, offline), and carries the loop's policy: retries as the loop's
restarts, its timeout, a gate rejection final, checkpoints in the S3 replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from failwell.deploy import training
from failwell.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
K8S = "1.30.0"


def shipped() -> dict[str, str]:
    return training.render(ROOT / training.SOURCE, training.IMAGE, training.DATA_CLAIM)


def test_the_training_job_is_current_valid_and_follows_the_loop_config() -> None:
    files = shipped()
    for name, text in files.items():
        path = ROOT / training.OUT / name
        assert path.read_text() == text, "regenerate: python -m failwell.deploy.training"
    assert sorted(p.name for p in (ROOT / training.OUT).iterdir()) == sorted(files)
    docs: list[dict[str, Any]] = list(yaml.safe_load_all(files["train-score.yaml"]))
    for doc in docs:
        kubernetes_validate.validate(doc, K8S, strict=True)
    config_map, job = docs
    spec = job["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 3600
    assert spec["parallelism"] == 1 and spec["completions"] == 1
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and 3 in rules[0]["onExitCodes"]["values"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["initContainers"][0]["command"][-3:] == ["restore", "--from", "s3"]
    pod_config = yaml.safe_load(config_map["data"]["failwell.yaml"])
    assert pod_config["registry"]["replicas"][0]["url"].startswith("s3://")
    assert pod_config["registry"]["path"].startswith("/var/lib/failwell")
    assert yaml.safe_load(config_map["data"]["job.yaml"])["data"] == "/data/train.jsonl"


def test_a_registry_without_an_s3_replica_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / training.SOURCE).read_text())
    raw["registry"]["replicas"] = []
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/scorer.yaml").write_text((ROOT / "examples/jobs/scorer.yaml").read_text())
    config = tmp_path / "retrain.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as refused:
        training.render(config, training.IMAGE, training.DATA_CLAIM)
    assert refused.value.issues[0].path == "registry.replicas"
