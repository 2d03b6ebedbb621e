"""The validation gate: a trained candidate passes when it fits its route and its own data
(``problems``, from ``training.fit``: none found) and its recorded metric is no worse than
the production version's (within ``tolerance``) and reaches ``minimum``. The verdict, with its
reason, goes into the candidate's metadata either way: a rejected candidate is registered (a
record of what was tried and why it failed), never promoted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from failwell.config.training import GateConfig
from failwell.registry.artifacts import Version


def judge(
    gate: GateConfig,
    metrics: dict[str, Any],
    baseline: Version | None,
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    value = metrics.get(gate.metric)
    verdict: dict[str, Any] = {"metric": gate.metric, "value": value, "passed": False}
    if problems:
        verdict.update(problems=list(problems), reason="; ".join(problems))
        return verdict
    if not isinstance(value, int | float):
        verdict["reason"] = f"the job recorded no number for {gate.metric!r}"
        return verdict
    sign = 1 if gate.higher_is_better else -1
    if gate.minimum is not None and sign * (value - gate.minimum) < 0:
        verdict["reason"] = f"{gate.metric} {value:g} misses the minimum {gate.minimum:g}"
        return verdict
    base = None if baseline is None else baseline.meta.get("metrics", {}).get(gate.metric)
    if baseline is not None and isinstance(base, int | float):
        verdict.update(baseline=baseline.ref, baseline_value=base)
        if sign * (value - base) < -gate.tolerance:
            verdict["reason"] = (
                f"{gate.metric} {value:g} is worse than {baseline.ref}'s {base:g}"
                f" by more than {gate.tolerance:g}"
            )
            return verdict
    verdict.update(passed=True, reason="no production version to beat" if base is None else "held")
    return verdict
