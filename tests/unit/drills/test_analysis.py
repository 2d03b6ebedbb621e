"""Drill files, the analysis of shots into detection/recovery/verdict, and the HTML report:
pure functions on synthetic shots."""

from typing import Any

import pytest

from failwell.drills.analysis import Window, analyse, detection, recovery
from failwell.drills.demo import DEMO_DRILL, demo_drill
from failwell.drills.load import Shot
from failwell.drills.report import render_html
from failwell.drills.spec import parse_drill
from failwell.errors import ConfigError

TIERS = ["primary", "fallback", "rules", "cache", "static"]


def shots(plan: list[tuple[float, float, str | None]], rate: int = 20) -> list[Shot]:
    """(from, to, tier) segments; tier None is a failed request."""
    out = []
    for start, end, tier in plan:
        n = round((end - start) * rate)
        for i in range(n):
            t = start + i / rate
            out.append(Shot(t, 0.01, 200 if tier else 0, tier))
    return out


def drill(**overrides: Any) -> Any:
    """The demo drill without its stream probe (tested on its own)."""
    steps = [{k: v for k, v in s.items() if k != "stream"} for s in DEMO_DRILL["steps"]]
    return demo_drill(**{"steps": steps, **overrides})


def windows(d: Any, starts: list[float], end: float, **fallbacks: Any) -> list[Window]:
    bounds = [*starts, end]
    return [
        Window(step, bounds[i], bounds[i + 1], fallbacks.get(str(i), {}))
        for i, step in enumerate(d.steps)
    ]


HEALTHY_RUN: list[tuple[float, float, str | None]] = [
    (0, 3, "primary"),
    (3, 3.1, "primary"),
    (3.1, 7, "fallback"),
    (7, 7.05, "fallback"),
    (7.05, 10, "rules"),
    (10, 10.05, "rules"),
    (10.05, 13, "cache"),
    (13, 15, "cache"),
    (15, 23, "primary"),
]


def test_the_classic_run_passes_with_detection_and_recovery() -> None:
    d = drill()
    result = analyse(d, TIERS, shots(HEALTHY_RUN), windows(d, [3, 7, 10, 13], 23), 23)
    assert result["verdict"] == "pass", result["reasons"]
    steps = {s["name"]: s for s in result["steps"]}
    assert steps["primary down"]["detect_s"] == pytest.approx(0.11, abs=0.02)
    assert steps["restore"]["recover_s"] == pytest.approx(2.01, abs=0.02)
    assert steps["restore"]["detect_s"] is None
    assert result["failed"] == 0 and result["tier1_share_healthy"] == 1.0
    assert len(result["series"]) == 23 and result["series"][5]["tiers"] == {"fallback": 20}


def test_a_broken_rules_tier_fails_with_the_reason() -> None:
    d = drill()
    broken = [(s, e, "cache" if t == "rules" else t) for s, e, t in HEALTHY_RUN]
    fallbacks = {"1": {"rules": {"rules_error": 58}}}
    result = analyse(d, TIERS, shots(broken), windows(d, [3, 7, 10, 13], 23, **fallbacks), 23)
    assert result["verdict"] == "fail"
    assert any(
        "rules answered 0.0% (expected ≥ 90.0%)" in r and "rules_error x58" in r
        for r in result["reasons"]
    ), result["reasons"]


def test_failed_requests_and_no_recovery_fail_the_steady_state() -> None:
    d = drill()
    plan = [*HEALTHY_RUN[:-1], (15, 16, None), (16, 23, "cache")]
    result = analyse(d, TIERS, shots(plan), windows(d, [3, 7, 10, 13], 23), 23)
    reasons = " | ".join(result["reasons"])
    assert "availability" in reasons and "tier 1 back within 14s: tier 1 back never" in reasons
    assert result["failed"] == 20


def test_detection_and_recovery_edges() -> None:
    assert detection([], TIERS, 1.0) is None
    steady = shots([(0, 5, "primary")])
    assert detection(steady, TIERS, 2.0) is None
    assert recovery(steady, "primary", 0.0, 0.99) == pytest.approx(0.01)


def test_report_is_self_contained_with_fault_windows() -> None:
    d = drill()
    result = analyse(d, TIERS, shots(HEALTHY_RUN), windows(d, [3, 7, 10, 13], 23), 23)
    html = render_html(result)
    assert html.count('class="fault-window"') == 2 * 3
    assert html.count('class="restore-window"') == 2
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "PASS" in html


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"steps": []}, "steps"),
        ({"steps": [{"name": "x", "duration": "1s", "actions": [{}]}]}, "steps.0.actions.0"),
        (
            {
                "target": "http://127.0.0.1:1",
                "steps": [
                    {
                        "name": "x",
                        "duration": "1s",
                        "actions": [{"process": "kill", "replicas": ["a"]}],
                    }
                ],
            },
            "",
        ),
        ({"load": {"rate": 0}, "steps": [{"name": "x", "duration": "1s"}]}, "load.rate"),
    ],
)
def test_bad_drill_files_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_drill(data)
    assert info.value.issues[0].path == key, info.value.issues


def test_drill_files_in_the_docs_validate() -> None:
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[3] / "docs" / "drills.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    drills = [b for b in blocks if isinstance(b, dict) and "steps" in b]
    assert drills
    for data in drills:
        parse_drill(data)
