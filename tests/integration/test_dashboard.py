"""The dashboard in a real headless Chromium: it loads without console errors, shows the
routes, and its tier chart moves off tier 1 when the primary replicas are killed."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import Gateway, Stack, launch_chromium
from tests.integration.observed import observed_config

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def steady_load(gw: Gateway, every: float = 0.02) -> Iterator[None]:
    """Requests from a background thread until the block ends (50 user ids, so the cache
    tier has answers once tier 1 is gone)."""
    stop = threading.Event()

    def loop() -> None:
        i = 0
        while not stop.is_set():
            body = f'{{"inputs": {{"user_id": "u{i % 50}"}}}}'.encode()
            req = urllib.request.Request(
                gw.predict_url("echo"), data=body, headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    resp.read()
            except OSError:
                pass
            i += 1
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_dashboard_shows_routes_and_tier_shift(stack: Stack, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    m1, m2 = stack.model_server(label="m1"), stack.model_server(label="m2")
    gw = stack.gateway(observed_config(stack, [m1, m2]))
    errors: list[str] = []
    with steady_load(gw), playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{gw.url}/dashboard", timeout=15_000)
            route = page.locator('section.route[data-route="echo"]')
            route.wait_for(timeout=10_000)
            assert "echo" in route.locator("h2").inner_text()
            chart = 'section.route[data-route="echo"] svg.tier-chart'
            page.wait_for_selector(f'{chart}[data-dominant-tier="primary"]', timeout=15_000)
            page.wait_for_selector('[data-canary="healthy"]', timeout=10_000)
            page.wait_for_timeout(3000)  # a few seconds of tier-1 traffic on the chart
            m1.kill()
            m2.kill()
            page.wait_for_function(
                f"""() => {{
                    const c = document.querySelector('{chart}');
                    return c && c.dataset.dominantTier && c.dataset.dominantTier !== 'primary';
                }}""",
                timeout=20_000,
            )
            page.wait_for_selector('[data-canary="unhealthy"]', timeout=10_000)
            # Still ready (the cache and static tiers answer), shown as degraded.
            page.wait_for_selector("#ready.warn", timeout=10_000)
            assert page.locator("#ready").inner_text() == "degraded"
            assert (
                int(
                    page.locator(
                        f"{chart[: -len('svg.tier-chart')]}svg.latency-chart"
                    ).get_attribute("data-points")
                    or 0
                )
                > 0
            )
            page.wait_for_timeout(2500)
            # the screenshot in docs/ is refreshed on request only, so a test run leaves the tree clean
            shot = (
                ROOT / "docs" / "dashboard.png"
                if os.environ.get("FAILWELL_SCREENSHOT")
                else tmp_path / "dashboard.png"
            )
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []


def test_dashboard_signs_in_with_a_key_for_a_session_cookie(stack: Stack) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    m1 = stack.model_server(label="m1")
    config = observed_config(stack, [m1])
    config["security"] = {
        "keys": [
            {"name": "ops", "secret": "ops-key-0123456789", "scopes": ["metrics"]},
            {"name": "app", "secret": "app-key-0123456789", "scopes": ["predict:*"]},
        ]
    }
    gw = stack.gateway(config)
    feed = f"{gw.url}/dashboard/feed"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(feed, timeout=5)
    assert denied.value.code == 401
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{gw.url}/dashboard", timeout=15_000)
            page.wait_for_selector("#signin", state="visible", timeout=10_000)
            page.fill("#signin-key", "app-key-0123456789")  # a key that may not read the state
            page.click("#signin button")
            page.wait_for_function(
                "() => document.getElementById('signin-error').textContent.includes('scope')",
                timeout=10_000,
            )
            page.fill("#signin-key", "ops-key-0123456789")
            page.click("#signin button")
            page.locator('section.route[data-route="echo"]').wait_for(timeout=10_000)
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
            cookies = page.context.cookies()
            [session] = [c for c in cookies if c["name"] == "failwell_session"]
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            assert session["path"] == "/dashboard"
            # The session reads the dashboard only, nothing else.
            status = page.evaluate("fetch('/admin/status').then((r) => r.status)")
            assert status == 401
            page.evaluate("fetch('/dashboard/signout', {method: 'POST'})")
            page.reload()
            page.wait_for_selector("#signin", state="visible", timeout=10_000)
        finally:
            browser.close()
    assert errors == []
