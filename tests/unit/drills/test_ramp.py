"""The ramp's plan and verdict, from made-up shots and decisions (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from failwell.drills.load import Shot
from failwell.drills.ramp import SHORT, RampPlan
from failwell.drills.ramp_analysis import analyse_ramp, decide_to_serving
from failwell.drills.ramp_report import render_ramp_html

PLAN = RampPlan(profile=((0, 10), (4, 50), (6, 50), (8, 10)), slo_p99=0.1, autoscale={})


def shots(slow_from: float | None = None) -> list[Shot]:
    out = []
    for second in range(8):
        for i in range(20):
            slow = slow_from is not None and second >= slow_from
            out.append(Shot(second + i / 20, 0.3 if slow else 0.03, 200, "primary"))
    return out


def decision(t: float, a: int, b: int) -> dict[str, Any]:
    return {"t": t, "from": a, "to": b, "direction": "up" if b > a else "down", "reason": "r"}


def replicas() -> list[dict[str, Any]]:
    return [
        {"t": t / 2, "desired": 2, "serving": 2, "starting": 0, "leaving": 0} for t in range(16)
    ]


def test_the_rate_follows_the_profile_and_the_fall_is_found() -> None:
    assert PLAN.rate_at(-1) == 10 and PLAN.rate_at(2) == pytest.approx(30)
    assert PLAN.rate_at(5) == 50 and PLAN.rate_at(99) == 10
    assert PLAN.falls_at() == 6 and SHORT.falls_at() == 10


def test_a_clean_ramp_passes_and_the_report_draws_each_decision() -> None:
    decisions = [decision(1.5, 2, 4), decision(6.5, 4, 3), decision(7.5, 3, 2)]
    result = analyse_ramp(PLAN, shots(), replicas(), decisions)
    assert result["verdict"] == "pass", result["checks"]
    assert result["first_breach_s"] is None and result["first_up_s"] == 1.5
    html = render_ramp_html(result)
    assert html.count('class="decision up"') == 1 and html.count('class="decision down"') == 2


def test_late_scale_up_flapping_and_early_scale_down_fail() -> None:
    decisions = [decision(1.0, 2, 3), decision(2.0, 3, 2), decision(4.5, 2, 4)]
    result = analyse_ramp(PLAN, shots(slow_from=3), replicas(), decisions)
    verdicts = {c["what"]: c["ok"] for c in result["checks"]}
    assert result["first_breach_s"] == 3
    assert verdicts == {
        "scale-up before the tier-1 p99 breaks the SLO": True,
        "scale-down after the load falls": False,
        "no flapping": False,
        "no failed request": True,
    }
    late = analyse_ramp(PLAN, shots(slow_from=1), replicas(), [decision(4.0, 2, 4)])
    assert not late["checks"][0]["ok"] and late["verdict"] == "fail"


def test_decide_to_serving_waits_for_every_replica_a_decision_added() -> None:
    events = [{"event": "replica_serving", "t": t} for t in (0.5, 2.0, 3.5, 9.0)]
    assert decide_to_serving([decision(1.0, 2, 4), decision(8.0, 4, 6)], events) == [2.5]
