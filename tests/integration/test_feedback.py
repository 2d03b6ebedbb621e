"""Delayed ground truth on a real gateway: answers are labelled later through
POST /v1/feedback/{route}; the live quality metric, its alert, the refusals of unknown,
repeated and mistyped labels, and the feedback in the inference log."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


def test_labels_join_answers_feed_live_quality_and_are_logged(stack: Stack, tmp_path: Path) -> None:
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
                "tiers": [{"name": "static", "value": {"cls": "dog"}}],
            }
        },
    )
    config["log"] = {"enabled": True, "path": str(tmp_path / "log"), "durability": "sync"}
    gw: Gateway = stack.gateway(config)
    for i in range(10):
        assert post(gw.predict_url("r"), {"inputs": {"x": i}}, f"req-{i}")[0] == 200
    feedback = f"{gw.url}/v1/feedback/r"

    status, body = post(feedback, {"request_id": "nope", "label": "dog"})
    assert status == 404 and "nope" in body["error"]["message"]
    status, body = post(feedback, {"request_id": "req-0", "label": {"a": 1}})
    assert status == 422 and body["error"]["field"] == "label"
    status, body = post(feedback, {"request_id": "req-0"})
    assert status == 422 and body["error"]["field"] == "label"
    items = [{"request_id": f"req-{i}", "label": "dog" if i < 6 else "cat"} for i in range(10)]
    status, body = post(feedback, {"items": items})
    assert status == 200 and body["accepted"] == 10 and body["value"] == 0.6 and body["judged"]
    assert post(feedback, {"request_id": "req-3", "label": "dog"})[0] == 409

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
