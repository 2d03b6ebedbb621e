"""The trend (``autoscale.trend``) on Kubernetes: a third KEDA trigger, the queue depth scaled
by the tier-1 rate ``predict_linear`` expects ahead (at least 1: it only votes up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from failwell.config import load_config
from failwell.deploy import keda, kubernetes
from failwell.observe import families

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "src/failwell/deploy/schemas/keda-scaledobject.json").read_text())


def scaled(trend: dict[str, Any]) -> dict[str, Any]:
    config = load_config(ROOT / kubernetes.SOURCE, resolve=False)
    backend = config.backends["ranker"]
    assert backend.managed is not None
    autoscale = backend.managed.autoscale.model_copy(
        update={"trend": backend.managed.autoscale.trend.model_copy(update=trend)}
    )
    managed = backend.managed.model_copy(update={"autoscale": autoscale})
    bc = backend.model_copy(update={"managed": managed})
    meta = {"name": kubernetes.backend_name("ranker"), "labels": {}}
    return keda.scaled_object("ranker", bc, config, kubernetes.PROMETHEUS, meta)


def test_the_trend_is_a_third_trigger_that_only_votes_up() -> None:
    doc = scaled({"enabled": True, "horizon": 5.0, "window": 8.0})
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    queue, _latency, trend = doc["spec"]["triggers"]
    assert trend["name"] == "queue-depth-trend" and trend["metricType"] == "AverageValue"
    assert trend["metadata"]["threshold"] == queue["metadata"]["threshold"]
    query = trend["metadata"]["query"]
    assert query.startswith(queue["metadata"]["query"] + " * clamp(")
    assert "predict_linear((" in query and "[120s:15s], 5)" in query  # window at least 2 min
    assert query.endswith(", 1, 10)")
    assert f"{families.REQUEST_DURATION.name}_count" in query


def test_without_the_trend_there_is_no_third_trigger() -> None:
    assert len(scaled({"enabled": False})["spec"]["triggers"]) == 2
