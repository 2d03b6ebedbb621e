"""The autoscaling ramp, compressed: open-loop load from 10 to 250 requests/s and back against
managed demo model servers with 20 ms of service time and 2 requests at once each. The trend
scales up before the p99 breaks its SLO, the count comes down after the load falls, nothing
flaps, no request fails; every decision is a metric, a point in the report and a point on the
dashboard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from failwell.drills.ramp import BACKEND, ROUTE, SHORT, ramp_config, run_ramp
from failwell.drills.ramp_report import render_ramp_html
from tests.integration.conftest import (
    Stack,
    free_port,
    http_json,
    launch_chromium,
    metric_value,
    wait_until,
)
from tests.integration.test_supervisor import no_replica_left, port_range

__all__ = ["no_replica_left"]  # the fixture that stops replicas a failed test left running


def serving(url: str) -> int:
    replicas = http_json(f"{url}/admin/supervisor")[BACKEND]["replicas"]
    return sum(1 for r in replicas if r["state"] == "serving")


def test_ramp_scales_up_before_the_slo_breaks_and_down_after(stack: Stack, tmp_path: Path) -> None:
    ports = port_range(SHORT.high + 2)
    gw = stack.gateway(ramp_config(free_port(), ports, str(tmp_path / "replicas"), SHORT))
    assert wait_until(lambda: serving(gw.url) == SHORT.low, timeout=60, interval=0.2)

    result = asyncio.run(run_ramp(gw.url, SHORT))

    checks = {c["what"]: c for c in result["checks"]}
    assert all(c["ok"] for c in checks.values()), (result["checks"], result["decisions"])
    ups = [d for d in result["decisions"] if d["direction"] == "up"]
    assert any("heading for" in d["reason"] for d in ups), ups
    assert result["decide_to_serving_s"], result["decisions"]
    text = gw.metrics()
    for direction in ("up", "down"):
        counted = metric_value(
            text, "failwell_autoscale_decisions_total", backend=BACKEND, direction=direction
        )
        assert counted == sum(1 for d in result["decisions"] if d["direction"] == direction)
    assert metric_value(text, "failwell_autoscale_signal", signal="forecast_rate") is not None
    html = render_ramp_html(result)
    assert html.count('class="decision ') == len(result["decisions"])
    assert 'class="marker up"' in html

    # And a point each on the dashboard's latency chart of the route, in a real Chromium.
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(f"{gw.url}/dashboard", timeout=15_000)
            chart = f'section[data-route="{ROUTE}"] svg.latency-chart'
            page.wait_for_selector(f"{chart}[data-decisions]", timeout=15_000)
            dots = page.locator(f"{chart} circle.decision")
            assert dots.count() == len(result["decisions"])
            assert any("heading for" in tip for tip in dots.all_text_contents())
        finally:
            browser.close()
