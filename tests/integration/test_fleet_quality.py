"""Many gateways, one truth for labels and SLO alerts: real gateways sharing one redis-server.

Two gateways (``a`` holds the fleet's lease, ``b`` follows): a label posted to either joins an
answer the other served, even one posted before the answer's batch reached Redis; a second
label for one answer is refused fleet-wide; the live quality metric counts the fleet's labels
and the lease holder alerts on labels it never saw; an availability alert fires on the lease
holder from errors only the follower served. Redis SIGKILLed: labels still join on the gateway
that served the answer and no request waits; once Redis is back, what was joined or answered
meanwhile reaches the fleet. Then ``failwell serve --workers 2``: every label is taken once
through one port.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

from tests.integration.conftest import (
    Gateway,
    Stack,
    free_port,
    http_json,
    metric_value,
    wait_until,
)

FIRING = "failwell_alert_firing"
ONE = ("--workers", "1")  # a gateway with a fleet runs one worker per core unless told


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


def config(stack: Stack, name: str, redis_url: str) -> dict[str, Any]:
    cfg = stack.config(
        backends={
            "gone": {  # nothing listens there: every call fails at once
                "protocol": "v2",
                "model": "m",
                "replicas": [{"url": f"http://127.0.0.1:{free_port()}"}],
                "health": False,
            }
        },
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
            },
            "bad": {
                "input": {"x": "float"},
                "slo": {
                    "availability": 0.99,
                    "windows": [{"short": "10s", "long": "30s", "burn_rate": 2}],
                },
                "tiers": [{"name": "primary", "backend": "gone"}],
            },
        },
    )
    cfg["gateway"]["cache"] = {"path": str(stack.tmp / f"{name}-cache.sqlite")}
    cfg["control"] = {"flags_path": str(stack.tmp / f"{name}-flags.json")}
    cfg["alerts"] = {"evaluate_every": "200ms"}
    cfg["fleet"] = {"redis": redis_url, "instance": name, "lease": "1s", "max_reconnect": "300ms"}
    return cfg


def fleet_check(gw: Gateway) -> dict[str, Any]:
    """The fleet's readiness check (the route "bad" makes the gateway unready: a 503)."""
    try:
        body = http_json(f"{gw.url}/health/ready")
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    return dict(body["checks"]["fleet"])


def firing(gw: Gateway, route: str, slo: str) -> bool:
    return metric_value(gw.metrics(), FIRING, route=route, slo=slo) == 1.0


def answer(gw: Gateway, rid: str) -> None:
    assert post(gw.predict_url("r"), {"inputs": {"x": 1.0}}, rid)[0] == 200


def label(gw: Gateway, labels: dict[str, int]) -> tuple[int, Any]:
    items = [{"request_id": rid, "label": y} for rid, y in labels.items()]
    return post(f"{gw.url}/v1/feedback/r", {"items": items})


def label_again(gw: Gateway, labels: dict[str, int]) -> tuple[int, Any]:
    """``label``, sent again (at most 20 times) while it is refused as the fleet unreachable:
    a 503 the caller should retry (a Redis command can time out on a loaded machine)."""
    for _ in range(20):
        status, body = label(gw, labels)
        if status != 503:
            break
        time.sleep(0.1)
    return status, body


def timed(call: Any) -> Any:
    """``call()``, asserting that it answered within a second (nothing waits on Redis)."""
    started = time.monotonic()
    result = call()
    assert time.monotonic() - started < 1.0
    return result


def test_two_gateways_share_labels_and_slo_alerts(stack: Stack) -> None:
    redis = stack.redis()
    a = stack.gateway(config(stack, "a", redis.url), name="a", args=ONE)
    assert wait_until(lambda: fleet_check(a)["leader"], timeout=10)
    b = stack.gateway(config(stack, "b", redis.url), name="b", args=ONE)
    assert wait_until(lambda: fleet_check(b)["up"], timeout=10)

    # labels cross over at once, before the answers' batches can have reached Redis
    for i in range(6):
        answer(a, f"a-{i}")
        answer(b, f"b-{i}")
    status, body = label(a, {f"b-{i}": 1 for i in range(6)})  # right: the answer is cls 1
    assert status == 200 and body["value"] == 1.0 and body["scope"] == "fleet", body
    assert wait_until(lambda: metric_value(a.metrics(), FIRING, route="r") == 0.0, timeout=5)
    status, body = label(b, {f"a-{i}": 0 for i in range(6)})  # wrong
    assert status == 200, body
    assert (body["value"], body["labels"], body["scope"]) == (0.5, 12, "fleet"), body

    # labelled once fleet-wide: a knows a-0 waits (it served it) but b labelled it first
    status, body = label(a, {"a-0": 1})
    assert status == 409 and "a-0" in body["error"]["message"], body
    assert label(b, {"b-1": 1})[0] == 409
    answer(a, "a-6")
    assert label(b, {"a-6": 0, "nope": 1})[0] == 404  # nothing of a refused batch applies
    assert label(b, {"a-6": 0})[0] == 200

    # the lease holder alerts on the fleet's labels (b took the wrong ones); b never alerts
    assert wait_until(lambda: firing(a, "r", "quality_live"), timeout=5)
    assert not firing(b, "r", "quality_live")

    # errors served only by the follower fire the availability alert on the lease holder
    for i in range(20):
        assert post(b.predict_url("bad"), {"inputs": {"x": i}})[0] == 503
    assert wait_until(lambda: firing(a, "bad", "availability"), timeout=10)
    local = http_json(f"{a.url}/admin/slo?route=bad")["routes"]["bad"]["availability"]
    assert local["windows"]["10.0"]["local"]["events"] == 0  # a judged what b counted
    assert not firing(b, "bad", "availability")

    # Redis dies: labels join on the gateway that served the answer; nothing waits on Redis
    redis.proc.kill(signal.SIGKILL)
    redis.proc.wait(5)
    assert wait_until(lambda: not fleet_check(a)["up"] and not fleet_check(b)["up"], timeout=10)
    timed(lambda: answer(b, "b-down"))
    timed(lambda: answer(a, "a-down"))
    status, body = timed(lambda: label(b, {"b-down": 1}))
    assert status == 200 and body["scope"] == "local", body
    status, body = timed(lambda: label(b, {"a-down": 1}))  # served by a: later, please
    assert status == 503 and body["error"]["type"] == "fleet_unreachable", body
    fallbacks = metric_value(b.metrics(), "failwell_fleet_fallbacks_total", part="labels")
    assert fallbacks is not None and fallbacks >= 1

    # Redis is back (empty): what waited is written; b-down stays labelled, a-down joins on b
    stack.redis(port=redis.port)
    assert wait_until(lambda: fleet_check(a)["up"] and fleet_check(b)["up"], timeout=15)
    assert label(a, {"b-down": 1})[0] == 409
    status, body = label(b, {"a-down": 1})
    assert status == 200 and body["scope"] == "fleet" and body["labels"] == 2, body


def test_workers_take_every_label_once(stack: Stack) -> None:
    redis = stack.redis()
    cfg = config(stack, "w", redis.url)
    del cfg["fleet"]["instance"]  # each worker its own name
    gw = stack.gateway(cfg, name="w", args=("--workers", "2"))
    linked: dict[str, bool] = {}  # worker's instance → linked to Redis (a new connection each)

    def both_linked() -> bool:
        check = fleet_check(gw)
        linked[check["instance"]] = check["up"]
        return len(linked) == 2 and all(linked.values())

    assert wait_until(both_linked, timeout=20)
    ids = [f"w-{i}" for i in range(20)]
    for rid in ids:  # each request on a new connection: either worker answers it
        answer(gw, rid)
    for rid in ids:
        status, body = label_again(gw, {rid: 1})
        assert status == 200, (rid, body)
    for rid in ids:
        status, body = label_again(gw, {rid: 1})
        assert status == 409, (rid, body)
