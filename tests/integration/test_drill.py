"""The drill runner end to end: the classic demo drill passes on a healthy build; with the rules
function broken it fails and says why; its HTML report opens in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import PY, Stack, http_json, launch_chromium
from tests.integration.test_failover import ranker_config


def drill(tmp: Path, models: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    workdir, out = tmp / "work", tmp / "out"
    workdir.mkdir()
    (workdir / "models").symlink_to(models)
    cmd = [PY, "-m", "failwell", "drill", *args, "--out", str(out)]
    if "--demo" in args:
        cmd += ["--workdir", str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=_env())
    return done, out


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "160"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, models: Path) -> tuple[Any, Path]:
    return drill(tmp_path_factory.mktemp("drill"), models, "--demo")


def test_the_demo_drill_passes(demo_run: tuple[Any, Path]) -> None:
    done, out = demo_run
    print(done.stdout)  # the figures, for the record
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "drill.json").read_text())
    assert result["verdict"] == "pass" and result["failed"] == 0
    assert result["tier1_share_healthy"] >= 0.99
    steps = {s["name"]: s for s in result["steps"]}
    for name, tier in (
        ("primary down", "fallback"),
        ("all models down", "rules"),
        ("all but the cache down", "cache"),
    ):
        assert steps[name]["detect_s"] is not None and steps[name]["detect_s"] < 3, name
        assert steps[name]["shares"].get(tier, 0) >= 0.9, (name, steps[name]["shares"])
    assert steps["restore"]["recover_s"] is not None
    # Meanwhile the chat streams were cut after 3 chunks: each ended with an in-band error, none truncated
    # with a clean close, none hung; the report says so.
    ends = steps["all but the cache down"]["streams"]
    assert ends.get("error_event", 0) >= 1 and set(ends) <= {"error_event", "complete"}, ends
    assert "every stream ended complete or with an error event" in (out / "drill.html").read_text()
    assert "verdict: PASS" in done.stdout


def test_a_broken_rules_function_fails_the_drill_with_the_reason(
    stack: Stack, models: Path
) -> None:
    server = stack.model_server(model_dir=models, label="east-1")
    cfg = ranker_config(stack, [server.replica()], models)
    cfg["routes"]["recommend"]["tiers"][2]["rules"] = "failwell.testing.models:broken_rule"
    cfg["control"] = {"flags_path": str(stack.tmp / "flags.json")}
    gw = stack.gateway(cfg)
    spec = {
        "name": "broken rules",
        "target": gw.url,
        "load": {"rate": 30, "users": 20},
        "warmup": "2s",
        "processes": {"east-1": {"pid": server.proc.pid}},
        "steps": [
            {
                "name": "all models down",
                "duration": "2s",
                "actions": [
                    {"process": "stop", "replicas": ["east-1"]},
                    {"flag": "backend:light", "enabled": False},
                ],
                "expect": {"min_share": {"rules": 0.9}},
            },
            {"name": "restore", "duration": "1s", "actions": [{"restore": True}]},
        ],
    }
    path = stack.tmp / "drill.yaml"
    path.write_text(yaml.safe_dump(spec))
    done, out = drill(stack.tmp, models, str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: FAIL" in done.stdout
    reasons = json.loads((out / "drill.json").read_text())["reasons"]
    assert any(
        "all models down: rules ≥ 90.0%" in r and "rules answered 0.0%" in r and "rules_error" in r
        for r in reasons
    ), reasons
    # The drill put back what it changed.
    assert http_json(f"{gw.url}/admin/faults")["faults"] == []
    assert http_json(f"{gw.url}/admin/flags")["off"] == []
    assert server.requests() >= 0  # thawed: it answers again


def test_a_bad_drill_file_is_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "drill.yaml"
    path.write_text(
        "steps: [{name: x, duration: 1s, actions: [{flag: 'backend:x', process: kill}]}]"
    )
    done = subprocess.run(
        [PY, "-m", "failwell", "drill", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "steps.0.actions.0" in done.stdout


def test_the_report_opens_in_chromium_and_shows_the_fault_windows(
    demo_run: tuple[Any, Path],
) -> None:
    from playwright.sync_api import sync_playwright

    _, out = demo_run
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((out / "drill.html").as_uri())
            assert page.locator(".verdict").inner_text() == "PASS"
            windows = page.locator("figure.tier-share .fault-window")
            assert windows.count() == 3
            box = windows.first.locator("rect").bounding_box()
            assert box is not None and box["width"] > 10 and box["height"] > 50
            assert page.locator("figure.latency .fault-window").count() == 3
            assert page.locator("figure.tier-share rect.share").count() > 10
            assert page.locator("polyline.latency").count() == 2
            assert page.get_by_text("cache down: every stream ended complete").count() == 1
            page.screenshot(path=str(out / "drill.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
