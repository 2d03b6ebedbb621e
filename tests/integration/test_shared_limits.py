"""Two gateway processes sharing one real redis-server respect one rate limit together."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.integration.conftest import Stack

BODY = json.dumps({"inputs": {"user_id": "u1"}}).encode()


def status(url: str) -> int:
    req = urllib.request.Request(url, data=BODY, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_two_gateways_share_one_limit_through_redis(stack: Stack) -> None:
    redis = stack.redis()
    gateways = []
    for name in ("gw-a", "gw-b"):
        config = stack.config(
            backends={},
            routes={
                "recommend": {
                    "input": {"user_id": "str"},
                    "admission": {"rate": {"rate": 1, "burst": 10}},
                    "tiers": [{"name": "static", "value": 1}],
                }
            },
        )
        config["security"] = {"redis": redis.url}
        gateways.append(stack.gateway(config, name))
    started = time.monotonic()
    codes: dict[str, list[int]] = {"gw-a": [], "gw-b": []}
    for i in range(40):
        gw = gateways[i % 2]
        codes[gw.proc.name].append(status(gw.predict_url("recommend")))
    elapsed = time.monotonic() - started
    allowed = sum(c.count(200) for c in codes.values())
    # One shared bucket: the burst of 10 plus 1/s; each gateway alone would allow 10 + 1/s.
    assert 10 <= allowed <= 10 + int(elapsed) + 1, (allowed, elapsed, codes)
    assert all(429 in c for c in codes.values()), codes
    assert all(s in (200, 429) for c in codes.values() for s in c)
