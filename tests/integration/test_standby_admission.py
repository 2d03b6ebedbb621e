"""When the primary priority group is gone and a small standby serves, the route admits only
the standby's declared share of capacity and sheds the rest with 503 + Retry-After."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.error
import urllib.request

from tests.integration.conftest import Stack, metric_value, wait_until

BODY = json.dumps({"inputs": {"user_id": "u1"}}).encode()


def post(url: str) -> tuple[int, str | None]:
    req = urllib.request.Request(url, data=BODY, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), None
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("retry-after")


def test_admission_shrinks_to_the_standby_capacity(stack: Stack) -> None:
    primary = stack.model_server(label="east")
    standby = stack.model_server(label="west")
    standby.control("slow", delay_ms=400)
    config = stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "timeout": "2s",
                "replicas": [
                    {**primary.replica("east", 0), "capacity": 4},
                    {**standby.replica("west", 1), "capacity": 1},
                ],
                "retry": {"attempts": 2, "backoff": "1ms"},
                "breaker": {"failure_threshold": 1, "recovery": "60s"},
            }
        },
        routes={
            "recommend": {
                "input": {"user_id": "str"},
                "deadline": "3s",
                "admission": {"concurrency": {"limit": 4, "queue": 0}},
                "tiers": [{"name": "primary", "backend": "ranker"}],
            }
        },
    )
    gw = stack.gateway(config)
    assert metric_value(gw.metrics(), "failwell_admission_capacity_scale", route="recommend") == 1
    primary.kill()
    assert post(gw.predict_url("recommend"))[0] == 200  # fails over; the primary's breaker opens
    assert wait_until(
        lambda: (
            metric_value(gw.metrics(), "failwell_admission_capacity_scale", route="recommend")
            == 0.25
        ),
        timeout=10,
    )
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: post(gw.predict_url("recommend")), range(6)))
    codes = [s for s, _ in results]
    assert 1 <= codes.count(200) <= 3 and codes.count(503) >= 3, codes
    assert all(ra == "1" for s, ra in results if s == 503)
