"""From the drill's shots to numbers and a verdict: per-second series, detection and recovery
times per step, each expectation and the steady-state hypothesis checked. Pure functions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from failwell.drills.load import COMPLETE, ERROR_EVENT, Shot
from failwell.drills.spec import Drill, Step

NO_ANSWER = "failed"


@dataclass(frozen=True, slots=True)
class Window:
    step: Step
    start: float  # seconds since the load started
    end: float
    fallbacks: dict[str, dict[str, int]] = field(default_factory=dict)  # tier → error → count
    streams: dict[str, int] | None = None  # a step's stream probe: how its streams ended


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    ok: bool
    detail: str


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _between(shots: Sequence[Shot], start: float, end: float) -> list[Shot]:
    return [s for s in shots if start <= s.sent < end]


def _label(shot: Shot) -> str:
    return shot.tier if shot.status == 200 and shot.tier else NO_ANSWER


def shares(shots: Sequence[Shot]) -> dict[str, float]:
    counts = Counter(_label(s) for s in shots)
    total = sum(counts.values())
    return {k: v / total for k, v in counts.most_common()} if total else {}


def per_second(shots: Sequence[Shot], end: float) -> list[dict[str, Any]]:
    rows = []
    for t in range(math.ceil(end)):
        inside = _between(shots, t, t + 1)
        ok = [s.latency for s in inside if s.status == 200]
        rows.append(
            {
                "t": t,
                "sent": len(inside),
                "tiers": dict(Counter(_label(s) for s in inside)),
                "failed": sum(s.status != 200 for s in inside),
                "p50_ms": round(percentile(ok, 0.50) * 1000, 2),
                "p99_ms": round(percentile(ok, 0.99) * 1000, 2),
            }
        )
    return rows


def _rank(tiers: Sequence[str], label: str) -> int:
    return tiers.index(label) if label in tiers else len(tiers)


def detection(shots: Sequence[Shot], tiers: Sequence[str], start: float) -> float | None:
    """Seconds from ``start`` until the first answer from a tier below the one serving most in
    the second before (or a failed request): the moment the fault showed."""
    before = Counter(_label(s) for s in _between(shots, start - 1.0, start))
    if not before:
        return None
    usual = min(_rank(tiers, label) for label, n in before.items() if n == max(before.values()))
    later = sorted((s for s in shots if s.sent >= start), key=lambda s: s.sent + s.latency)
    for shot in later:
        if _rank(tiers, _label(shot)) > usual:
            return round(shot.sent + shot.latency - start, 3)
    return None


def recovery(
    shots: Sequence[Shot], tier1: str, start: float, threshold: float, span: float = 1.0
) -> float | None:
    """Seconds from ``start`` until the first tier-1 answer after which tier 1 answers at least
    ``threshold`` of the requests for ``span`` seconds."""
    later = sorted((s for s in shots if s.sent >= start), key=lambda s: s.sent)
    last = later[-1].sent if later else start
    for shot in later:
        if _label(shot) != tier1 or shot.sent + span > last:
            continue
        run = _between(later, shot.sent, shot.sent + span)
        if sum(_label(s) == tier1 for s in run) / len(run) >= threshold:
            return round(shot.sent + shot.latency - start, 3)
    return None


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _mix(share: dict[str, float]) -> str:
    return ", ".join(f"{k} {_pct(v)}" for k, v in share.items()) or "no requests"


def _step_checks(w: Window, inside: list[Shot], recovered: float | None) -> list[Check]:
    exp, name = w.step.expect, w.step.name
    checks = []
    share = shares(inside)
    for tier, least in exp.min_share.items():
        got = share.get(tier, 0.0)
        detail = f"{tier} answered {_pct(got)} (expected ≥ {_pct(least)}); answers: {_mix(share)}"
        why = w.fallbacks.get(tier)
        if got < least and why:
            detail += "; " + tier + " was passed over: "
            detail += ", ".join(f"{err} x{n}" for err, n in sorted(why.items()))
        checks.append(Check(f"{name}: {tier} ≥ {_pct(least)}", got >= least, detail))
    failed = sum(s.status != 200 for s in inside)
    checks.append(
        Check(
            f"{name}: failed ≤ {exp.max_failed}",
            failed <= exp.max_failed,
            f"{failed} failed of {len(inside)}",
        )
    )
    if exp.p99 is not None:
        p99 = percentile([s.latency for s in inside if s.status == 200], 0.99)
        checks.append(
            Check(
                f"{name}: p99 ≤ {exp.p99 * 1000:.0f} ms",
                p99 <= exp.p99,
                f"p99 {p99 * 1000:.1f} ms",
            )
        )
    if w.streams is not None:
        checks.append(stream_check(name, w.streams))
    if exp.recover_within is not None:
        ok = recovered is not None and recovered <= exp.recover_within
        got_text = "never" if recovered is None else f"after {recovered:.2f}s"
        checks.append(
            Check(
                f"{name}: tier 1 back within {exp.recover_within:g}s",
                ok,
                f"tier 1 back {got_text}",
            )
        )
    return checks


def stream_check(name: str, ends: dict[str, int]) -> Check:
    """Every stream of a step's probe ended complete or with an in-band error event."""
    bad = sum(n for end, n in ends.items() if end not in (COMPLETE, ERROR_EVENT))
    total = sum(ends.values())
    detail = ", ".join(f"{end} {n}" for end, n in sorted(ends.items())) or "no streams"
    return Check(
        f"{name}: every stream ended complete or with an error event",
        bad == 0 and total > 0,
        f"{total} streams: {detail}",
    )


def analyse(
    drill: Drill, tiers: Sequence[str], shots: Sequence[Shot], windows: Sequence[Window], end: float
) -> dict[str, Any]:
    """The drill's result as plain data (what the JSON file holds)."""
    ss, tier1 = drill.steady_state, tiers[0]
    steps, checks = [], []
    healthy = _between(shots, min(1.0, drill.warmup / 2), windows[0].start if windows else end)
    for i, w in enumerate(windows):
        inside = _between(shots, w.start + w.step.grace, w.end)
        everything = _between(shots, w.start, w.end)
        detected = None if w.step.restores else detection(shots, tiers, w.start)
        recovered = recovery(shots, tier1, w.start, ss.tier1_share) if w.step.restores else None
        if recovered is not None and i == len(windows) - 1:
            # Healthy again from the end of the second that showed tier 1 back.
            healthy += _between(shots, w.start + recovered + 1.0, w.end)
        step_checks = _step_checks(w, inside, recovered)
        checks += step_checks
        steps.append(
            {
                "name": w.step.name,
                "actions": [a.describe() for a in w.step.actions],
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "detect_s": detected,
                "recover_s": recovered,
                "requests": len(everything),
                "failed": sum(s.status != 200 for s in everything),
                "shares": {k: round(v, 4) for k, v in shares(inside).items()},
                "fallbacks": w.fallbacks,
                "streams": w.streams,
                "checks": [asdict(c) for c in step_checks],
            }
        )
    answered = sum(s.status == 200 for s in shots)
    availability = answered / len(shots) if shots else 0.0
    five = sum(500 <= s.status < 600 for s in shots)
    t1 = shares(healthy).get(tier1, 0.0)
    steady = [
        Check(
            f"availability ≥ {_pct(ss.availability)}",
            availability >= ss.availability,
            f"{answered} of {len(shots)} answered ({_pct(availability)})",
        ),
        Check(f"5xx ≤ {ss.max_5xx}", five <= ss.max_5xx, f"{five} answers were 5xx"),
        Check(
            f"tier-1 share when healthy ≥ {_pct(ss.tier1_share)}",
            t1 >= ss.tier1_share,
            f"{tier1} answered {_pct(t1)} of {len(healthy)} requests when healthy",
        ),
    ]
    if ss.p99 is not None:
        p99 = percentile([s.latency for s in healthy if s.status == 200], 0.99)
        steady.append(
            Check(
                f"p99 when healthy ≤ {ss.p99 * 1000:.0f} ms",
                p99 <= ss.p99,
                f"p99 {p99 * 1000:.1f} ms",
            )
        )
    failures = [c for c in steady + checks if not c.ok]
    return {
        "name": drill.name,
        "route": drill.route,
        "tiers": list(tiers),
        "verdict": "pass" if not failures else "fail",
        "reasons": [f"{c.what}: {c.detail}" for c in failures],
        "duration_s": round(end, 3),
        "rate": drill.load.rate,
        "requests": len(shots),
        "failed": len(shots) - answered,
        "tier1_share_healthy": round(t1, 4),
        "steady_state": [asdict(c) for c in steady],
        "steps": steps,
        "series": per_second(shots, end),
    }
