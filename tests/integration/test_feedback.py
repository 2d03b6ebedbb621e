"""Delayed ground truth on a real gateway: answers are labelled later through
POST /v1/feedback/{route}; the live quality metric, its alert, the refusals of unknown,
repeated and mistyped labels, the feedback in the inference log, and a training job whose
data is that logged traffic joined with its labels."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from failwell.config.registry import RegistryConfig
from failwell.registry import open_registry
from tests.integration.conftest import Gateway, Stack, metric_value


def post(url: str, body: Any, rid: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if rid is not None:
        headers["x-request-id"] = rid
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_labels_join_answers_feed_live_quality_are_logged_and_train(
    stack: Stack, tmp_path: Path
) -> None:
    config = stack.config(
        backends={},
        routes={
            "r": {
                "input": {"x": "float"},
                "quality": {
                    "metric": "accuracy",
                    "output": "cls",
                    "objective": 0.9,
                    "min_labels": 5,
                },
                "tiers": [{"name": "static", "value": {"cls": 1}}],
            }
        },
    )
    config["log"] = {"enabled": True, "path": str(tmp_path / "log"), "durability": "sync"}
    config["registry"] = {"path": str(tmp_path / "registry")}
    gw: Gateway = stack.gateway(config)
    for i in range(12):  # the last two are never labelled
        assert post(gw.predict_url("r"), {"inputs": {"x": i}}, f"req-{i}")[0] == 200
    feedback = f"{gw.url}/v1/feedback/r"

    status, body = post(feedback, {"request_id": "nope", "label": 1})
    assert status == 404 and "nope" in body["error"]["message"]
    status, body = post(feedback, {"request_id": "req-0", "label": {"a": 1}})
    assert status == 422 and body["error"]["field"] == "label"
    status, body = post(feedback, {"request_id": "req-0"})
    assert status == 422 and body["error"]["field"] == "label"
    items = [{"request_id": f"req-{i}", "label": 1 if i < 6 else 0} for i in range(10)]
    status, body = post(feedback, {"items": items})
    assert status == 200 and body["accepted"] == 10 and body["value"] == 0.6 and body["judged"]
    assert post(feedback, {"request_id": "req-3", "label": 0})[0] == 409

    text = gw.metrics()
    assert metric_value(text, "failwell_quality_live", route="r", metric="accuracy") == 0.6
    assert metric_value(text, "failwell_alert_firing", route="r", slo="quality_live") == 1
    assert metric_value(text, "failwell_quality_labels_total", route="r", result="accepted") == 10

    out = tmp_path / "records.jsonl"
    exported = subprocess.run(
        [sys.executable, "-m", "failwell", "log", "export", "--config", str(gw.config_path), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    feedback_records = [r for r in records if r.get("front_end") == "feedback"]
    assert len(feedback_records) == 5  # three refused, one batch, one repeat
    assert {r["status"] for r in feedback_records} == {200, 404, 409, 422}

    # a training job whose data is the logged requests joined with their labels; its gate
    # holds it against the route: the demo scorer answers {score, label}, the route reads cls
    job = {
        "model": "scorer",
        "entry": "failwell.demo.trainer:train",
        "from_log": {"route": "r", "since": "1h"},
        "args": {"epochs": 2, "batch": 4},
        "gate": {"metric": "steps"},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    argv = [sys.executable, "-m", "failwell", "train", str(tmp_path / "job.yaml")]
    trained = subprocess.run(
        [*argv, "--config", str(gw.config_path)], capture_output=True, text=True, timeout=60
    )
    assert trained.returncode == 3, trained.stderr  # registered, rejected by its gate
    assert "10 rows from the log; 2 requests without a label left out" in trained.stderr
    version = open_registry(RegistryConfig(path=str(tmp_path / "registry"))).resolve("scorer@v1")
    assert version.meta["training"]["from_log"] == {
        "rows": 10,
        "requests": 12,
        "unlabelled": 2,
        "labels": 10,
        "orphans": 0,
    }
    assert set(version.meta["reference"]["features"]) == {"x", "output.cls"}
    gate = version.meta["gate"]
    assert not gate["passed"]
    assert gate["problems"] == ["2 held-out answers lack output 'cls' that the route reads"]
    assert not (tmp_path / "registry" / "training" / "scorer.jsonl").exists()
