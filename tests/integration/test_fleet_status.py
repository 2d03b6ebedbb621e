"""Status pages of a fleet: two gateway processes sharing one redis-server, traffic through
both. ``/admin/status`` and ``/dashboard/feed`` of either show the same fleet-wide SLO figures
(the sum of both processes' counts) with each process's own beside them, and ``failwell
status`` prints them so labelled. Redis SIGSTOPped, then SIGKILLed: every status request still
answers within ``FLEET_WAIT`` (and a bit), with this process's figures labelled as the
local-only fallback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from failwell.api.status import FLEET_WAIT
from tests.integration.conftest import PY, Gateway, Stack, http_json, wait_until
from tests.integration.test_fleet_quality import ONE, config, post

SENT = {"a": (7, 3), "b": (5, 2)}  # requests to route r (answered), to route bad (failed)


def slo(gw: Gateway, path: str = "/admin/status") -> tuple[float, dict[str, Any]]:
    """(seconds the request took, the document)."""
    started = time.monotonic()
    doc: dict[str, Any] = http_json(f"{gw.url}{path}", timeout=5)
    return time.monotonic() - started, doc


def events(doc: dict[str, Any], route: str, key: str = "slo") -> tuple[int, int]:
    figures = doc["routes"][route][key]["availability"]
    return figures["events"], figures["bad"]


def cli(gw: Gateway) -> str:
    env = {**os.environ, "COLUMNS": "220", "NO_COLOR": "1"}
    done = subprocess.run(
        [PY, "-m", "failwell", "status", "--url", gw.url, "--window", "60"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=True,
    )
    return done.stdout


def test_status_shows_the_fleets_slo_figures_and_falls_back_to_local(stack: Stack) -> None:
    redis = stack.redis()
    gateways = {}
    for name in ("a", "b"):
        cfg = config(stack, name, redis.url)
        for route in ("r", "bad"):  # a shortest window longer than the test
            cfg["routes"][route]["slo"] = {
                "availability": 0.99,
                "windows": [{"short": "2m", "long": "5m", "burn_rate": 2}],
            }
        gateways[name] = stack.gateway(cfg, name=name, args=ONE)
    for name, (good, failed) in SENT.items():
        gw = gateways[name]
        for i in range(good):
            assert post(gw.predict_url("r"), {"inputs": {"x": float(i)}})[0] == 200
        for i in range(failed):
            assert post(gw.predict_url("bad"), {"inputs": {"x": float(i)}})[0] == 503

    fleet_r = (sum(g for g, _ in SENT.values()), 0)
    fleet_bad = (sum(f for _, f in SENT.values()),) * 2

    def settled() -> bool:  # each process flushes its counts every second
        docs = [slo(gw)[1] for gw in gateways.values()]
        return all(events(d, "r") == fleet_r and events(d, "bad") == fleet_bad for d in docs)

    assert wait_until(settled, timeout=15, interval=0.2)
    for name, gw in gateways.items():
        good, failed = SENT[name]
        for path in ("/admin/status", "/dashboard/feed?window=60"):
            _, doc = slo(gw, path)
            assert doc["slo_view"]["fleet"] is True and doc["slo_view"]["scope"] == "fleet"
            assert doc["slo_view"]["instance"] == name
            assert doc["slo_view"]["age_s"] < 5
            assert doc["routes"]["r"]["slo_scope"] == "fleet"
            assert events(doc, "r") == fleet_r and events(doc, "bad") == fleet_bad
            assert events(doc, "r", "slo_local") == (good, 0)
            assert events(doc, "bad", "slo_local") == (failed, failed)
            assert doc["routes"]["bad"]["slo"]["availability"]["burn_rate"] == 100.0
        printed = cli(gw)
        assert "SLOs: fleet-wide" in printed and f"from {name}" in printed
        assert "this process" in printed

    a = gateways["a"]

    def fallen_back(took: list[float]) -> bool:
        seconds, doc = slo(a)
        took.append(seconds)
        return bool(doc["slo_view"]["scope"] == "local_fallback")

    # Redis hung (stopped, its connections open): the counts read last go stale, and no status
    # request waits on Redis for longer than FLEET_WAIT
    hung: list[float] = []
    redis.proc.kill(signal.SIGSTOP)
    try:
        assert wait_until(lambda: fallen_back(hung), timeout=20, interval=0.1)
    finally:
        redis.proc.kill(signal.SIGCONT)
    assert max(hung) < FLEET_WAIT + 0.5, hung
    assert wait_until(lambda: slo(a)[1]["slo_view"]["scope"] == "fleet", timeout=20, interval=0.2)

    dead: list[float] = []
    redis.proc.kill(signal.SIGKILL)
    redis.proc.wait(5)
    assert wait_until(lambda: fallen_back(dead), timeout=15, interval=0.1)
    assert max(dead) < FLEET_WAIT + 0.5, dead  # never waits on the dead Redis for long
    for what, took in (("hung", hung), ("killed", dead)):
        print(
            f"\nstatus with Redis {what}: {len(took)} requests, slowest {max(took) * 1000:.0f} ms"
        )
    _, doc = slo(a, "/dashboard/feed?window=60")
    assert doc["slo_view"]["unavailable"]
    assert doc["routes"]["r"]["slo_scope"] == "local_fallback"
    assert events(doc, "r") == (SENT["a"][0], 0) == events(doc, "r", "slo_local")
    assert events(doc, "bad") == (SENT["a"][1],) * 2
    printed = cli(a)
    assert "local-only fallback" in printed and "LOCAL ONLY" in printed
