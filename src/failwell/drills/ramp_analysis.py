"""What an autoscaling ramp showed, per second and as a verdict: did the first scale-up come
before the latency broke the SLO, did the count come down after the load fell, did it flap,
did any request fail; and how long each decision to add took to serve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from failwell.drills.analysis import percentile
from failwell.drills.load import Shot

if TYPE_CHECKING:
    from failwell.drills.ramp import RampPlan

TIER1 = "primary"
MIN_SECOND = 20  # a second with fewer requests says little about a p99 (it is their max)


def per_second(plan: RampPlan, shots: Sequence[Shot]) -> list[dict[str, Any]]:
    """Planned and sent rate, failures, tier-1 share and latency (every request, as the client
    saw it, a failure at its latency) for each second of the ramp."""
    rows = []
    for second in range(math.ceil(plan.duration)):
        inside = [s for s in shots if second <= s.sent < second + 1]
        answered = [s for s in inside if s.status == 200]
        latencies = [s.latency for s in inside]
        tier1 = sum(1 for s in answered if s.tier == TIER1)
        rows.append(
            {
                "t": second,
                "planned": round(plan.rate_at(second + 0.5), 1),
                "sent": len(inside),
                "failed": len(inside) - len(answered),
                "tier1_share": round(tier1 / len(inside), 4) if inside else None,
                "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            }
        )
    return rows


def decide_to_serving(
    decisions: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
) -> list[float]:
    """For each scale-up, seconds from the decision to the last replica it added serving."""
    serving = sorted(e["t"] for e in events if e["event"] == "replica_serving")
    out = []
    for d in decisions:
        if d["direction"] != "up":
            continue
        after = [t for t in serving if t >= d["t"]][: d["to"] - d["from"]]
        if len(after) == d["to"] - d["from"]:
            out.append(round(after[-1] - d["t"], 3))
    return out


def _check(what: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"what": what, "ok": ok, "detail": detail}


def analyse_ramp(
    plan: RampPlan,
    shots: Sequence[Shot],
    samples: Sequence[dict[str, Any]],
    decisions: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    series = per_second(plan, shots)
    slo_ms = plan.slo_p99 * 1000
    breach = next(
        (r["t"] for r in series if r["sent"] >= MIN_SECOND and r["p99_ms"] > slo_ms), None
    )
    directions = [d["direction"] for d in decisions]
    first_up = next((d["t"] for d in decisions if d["direction"] == "up"), None)
    falls = plan.falls_at()
    downs_after = [d for d in decisions if d["direction"] == "down" and d["t"] >= falls]
    reversals = sum(1 for a, b in pairwise(directions) if a != b)
    flaps = reversals - 1 if directions[:1] == ["up"] and reversals else reversals
    failed = sum(r["failed"] for r in series)
    ready = decide_to_serving(decisions, events)
    checks = [
        _check(
            "scale-up before the tier-1 p99 breaks the SLO",
            first_up is not None and (breach is None or first_up < breach),
            f"first scale-up at {first_up}s; first second over {slo_ms:g} ms: "
            f"{'none' if breach is None else f'{breach}s'}",
        ),
        _check(
            "scale-down after the load falls",
            bool(downs_after)
            and all(d["t"] >= falls for d in decisions if d["direction"] == "down"),
            f"load falls at {falls:g}s; scale-downs at "
            + (", ".join(f"{d['t']:.1f}s" for d in downs_after) or "none"),
        ),
        _check("no flapping", flaps == 0, " ".join(directions) or "no decision"),
        _check("no failed request", failed == 0, f"{failed} of {len(shots)} failed"),
    ]
    return {
        "kind": "ramp",
        "duration_s": plan.duration,
        "slo_p99_ms": slo_ms,
        "profile": [list(p) for p in plan.profile],
        "requests": len(shots),
        "failed": failed,
        "series": series,
        "replicas": list(samples),
        "decisions": list(decisions),
        "first_up_s": first_up,
        "first_breach_s": breach,
        "falls_s": falls,
        "decide_to_serving_s": ready,
        "checks": checks,
        "verdict": "pass" if all(c["ok"] for c in checks) else "fail",
    }
