"""Recent traffic for the dashboard: answers per tier, latency, and streams' time to first
token."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from failwell.contracts import Answer, Exchange
from failwell.health.traffic import RouteTraffic
from failwell.routing.route import Route
from failwell.testing import FakeClock


def test_streams_show_their_time_to_first_token() -> None:
    tiers = [SimpleNamespace(name="primary"), SimpleNamespace(name="fallback")]
    route = cast(Route, SimpleNamespace(chain=SimpleNamespace(tiers=tiers)))
    traffic = RouteTraffic(route, FakeClock(100.0))
    for tier, latency, stream in [(0, 0.004, True), (1, 0.2, True), (0, 0.04, False)]:
        ex = Exchange("id", {}, "/v1/chat/completions", route="chat", status=200)
        ex.answer = Answer({}, tiers[tier].name, "q", "b", None, latency, tier)
        if stream:
            ex.answer.tiers = [ex.answer.tier]
        traffic.record(ex)
    snap = traffic.snapshot(60.0, 5)
    assert snap["by_tier"] == {"primary": 2, "fallback": 1, "failed": 0}
    assert snap["ttft_ms"] == {"p50": 5.0, "p99": 250.0}
    assert snap["latency_ms"]["p50"] == 50.0


def test_without_streams_there_is_no_ttft() -> None:
    route = cast(Route, SimpleNamespace(chain=SimpleNamespace(tiers=[SimpleNamespace(name="t")])))
    traffic = RouteTraffic(route, FakeClock(100.0))
    ex = Exchange("id", {}, "/v1/predict/r", route="r", status=200)
    ex.answer = Answer({}, "t", "q", "b", None, 0.01, 0)
    traffic.record(ex)
    assert traffic.snapshot(60.0, 5)["ttft_ms"] == {"p50": None, "p99": None}
