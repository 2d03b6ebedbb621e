"""The drift monitor in a real gateway: a reference made by the CLI from generated data,
traffic like the data (no alarm), then traffic with a shifted feature (alarm, metric, alert,
`failwell drift status`)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from tests.integration.conftest import Gateway, Stack, http_json, metric_value, wait_until


def send(gw: Gateway, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        req = urllib.request.Request(
            gw.predict_url("r"),
            json.dumps({"inputs": row}).encode(),
            {"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200


def rows(rng: np.random.Generator, n: int, shift: float) -> list[dict[str, Any]]:
    xs, cs = rng.normal(shift, 1, n), rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    return [{"x": float(x), "c": str(c)} for x, c in zip(xs, cs, strict=True)]


def test_a_shifted_feature_is_detected_alerted_and_shown(stack: Stack, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows(rng, 3000, 0.0)))
    made = subprocess.run(
        [sys.executable, "-m", "failwell", "drift", "reference", str(data), "--out", str(tmp_path / "ref.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = stack.config(
        backends={"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
        routes={
            "r": {
                "input": {"x": "float", "c": "str"},
                "drift": {
                    "reference": "ref.json",
                    "window": 300,
                    "min_samples": 200,
                    "every": "300ms",
                },
                "tiers": [{"name": "model", "backend": "echo"}, {"name": "static", "value": 0}],
            }
        },
    )
    gw = stack.gateway(config)  # the config file sits in tmp_path: ref.json is beside it
    url = f"{gw.url}/admin/drift"

    send(gw, rows(rng, 300, 0.0))
    assert wait_until(lambda: "x" in http_json(url)["routes"]["r"]["features"], timeout=10)
    assert http_json(url)["routes"]["r"]["drifting"] == []

    send(gw, rows(rng, 300, 1.0))  # x moves by one standard deviation; c does not
    assert wait_until(lambda: http_json(url)["routes"]["r"]["drifting"] == ["x"], timeout=10)
    text = gw.metrics()
    assert metric_value(text, "failwell_drift_drifting", route="r", feature="x") == 1
    assert metric_value(text, "failwell_drift_drifting", route="r", feature="c") == 0
    assert metric_value(text, "failwell_alert_firing", route="r", slo="drift") == 1
    shown = subprocess.run(
        [sys.executable, "-m", "failwell", "drift", "status", "--gateway", gw.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "yes" in shown.stdout and "x" in shown.stdout
