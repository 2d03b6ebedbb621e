"""Freshness on real processes: stale features and an old model turn freshness events bad in
/metrics, and the model and feature ages are exported."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.integration.conftest import Gateway, Stack, http_json, metric_value, wait_until


def predict(gw: Gateway, route: str, inputs: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = http_json(gw.predict_url(route), {"inputs": inputs})
    return answer


def events(text: str, route: str, kind: str) -> float | None:
    return metric_value(text, "failwell_slo_events_total", route=route, slo="freshness", kind=kind)


def test_stale_features_and_an_old_model_are_bad_freshness_events(stack: Stack) -> None:
    server = stack.model_server(label="m")
    backend = {"protocol": "v2", "model": "ranker", "replicas": [server.replica()]}
    route = {
        "input": {"user_id": "str", "ts": "float", "day": "str"},
        "deadline": "2s",
        "slo": {
            "freshness": {"max_model_age": "30d", "features": {"ts": "1h", "day": "2d"}},
            "windows": [{"long": "10s", "short": "2s", "burn_rate": 2}],
        },
    }
    config = stack.config(
        backends={
            "fresh": backend,  # no model_created: age counts from the first answer
            "old": {**backend, "model_created": "2020-01-01T00:00:00Z"},
        },
        routes={
            name: {**route, "tiers": [{"name": "primary", "backend": name}]}
            for name in ("fresh", "old")
        },
    )
    config["alerts"] = {"evaluate_every": "200ms"}
    gw = stack.gateway(config)
    now = time.time()
    today = dt.datetime.now(dt.UTC).isoformat()
    good = {"user_id": "u", "ts": now - 60, "day": today}
    for _ in range(3):
        assert predict(gw, "fresh", good)["tier"] == "primary"
    assert predict(gw, "fresh", {**good, "ts": now - 7200})["tier"] == "primary"  # stale ts
    assert predict(gw, "fresh", {**good, "day": "2021-03-01"})["tier"] == "primary"  # stale day
    for _ in range(2):  # fresh features, but the model is years old
        assert predict(gw, "old", good)["tier"] == "primary"

    text = gw.metrics()
    assert events(text, "fresh", "total") == 5
    assert events(text, "fresh", "bad") == 2
    assert events(text, "old", "total") == 2
    assert events(text, "old", "bad") == 2
    old_age = metric_value(text, "failwell_model_age_seconds", backend="old")
    assert old_age is not None and old_age > 5 * 365 * 86400
    fresh_age = metric_value(text, "failwell_model_age_seconds", backend="fresh")
    assert fresh_age is not None and fresh_age < 600
    counted = metric_value(text, "failwell_feature_age_seconds_count", route="fresh", feature="ts")
    assert counted == 5
    within_hour = metric_value(
        text, "failwell_feature_age_seconds_bucket", route="fresh", feature="ts", le="3600.0"
    )
    assert within_hour == 4

    # The burn-rate machinery covers it: the old model's route burns its freshness budget.
    def firing() -> float | None:
        return metric_value(gw.metrics(), "failwell_alert_firing", route="old", slo="freshness")

    assert wait_until(lambda: firing() == 1, 10)
