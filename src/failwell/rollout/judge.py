"""Does the candidate hold up against stable? The gates of one rollout step.

Each gate compares the candidate's answers in the current step with stable's: error rate,
latency p99, and the distance between their output distributions (two-sample Kolmogorov-
Smirnov statistic over every number in the answers). A failed canary check fails the step on
its own. ``judge`` is a pure function of the two windows: no clock, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from failwell.rollout.split import ArmStats


@dataclass(frozen=True)
class Gates:
    min_requests: int = 20  # candidate answers a step needs before it can pass
    max_error_increase: float = 0.02  # candidate error rate may exceed stable's by this much
    early_errors: int = 5  # this many candidate errors over the limit fail a step at once
    max_p99_ratio: float = 1.5  # candidate p99 may be this times stable's ...
    p99_slack: float = 0.025  # ... or stable's plus this many seconds, whichever is larger
    max_distance: float = 0.3  # KS statistic between the output distributions


class Outcome(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WAIT = "wait"  # not enough candidate traffic yet


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""


def distance(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs
    (scipy's ``ks_2samp(a, b).statistic``, in numpy: the gateway does not import scipy)."""
    if not a or not b:
        raise ValueError("distance needs two non-empty samples")
    xs, ys = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    both = np.concatenate([xs, ys])
    gap = np.searchsorted(xs, both, side="right") / len(xs) - np.searchsorted(
        ys, both, side="right"
    ) / len(ys)
    return float(np.max(np.abs(gap)))


def judge(stable: ArmStats, candidate: ArmStats, gates: Gates, final: bool) -> Verdict:
    """During a step only a clear excess of errors fails it (at once); at the end of a step
    (``final``) PASS when every gate holds on enough traffic, FAIL when one does not, WAIT when
    the candidate has not answered enough yet."""
    limit = stable.error_rate + gates.max_error_increase
    if candidate.errors >= gates.early_errors and candidate.error_rate > limit:
        return Verdict(
            Outcome.FAIL,
            f"error rate {candidate.error_rate:.1%} > stable {stable.error_rate:.1%} "
            f"+ {gates.max_error_increase:.1%} (last error: {candidate.last_error})",
        )
    if not final:
        return Verdict(Outcome.WAIT, "step running")
    if candidate.requests < gates.min_requests:
        return Verdict(Outcome.WAIT, f"{candidate.requests}/{gates.min_requests} candidate answers")
    if candidate.error_rate > limit:
        return Verdict(
            Outcome.FAIL,
            f"error rate {candidate.error_rate:.1%} > stable {stable.error_rate:.1%} "
            f"+ {gates.max_error_increase:.1%}",
        )
    if stable.latencies:
        allowed = max(stable.p99 * gates.max_p99_ratio, stable.p99 + gates.p99_slack)
        if candidate.p99 > allowed:
            return Verdict(
                Outcome.FAIL,
                f"latency p99 {candidate.p99 * 1000:.1f}ms > allowed {allowed * 1000:.1f}ms "
                f"(stable {stable.p99 * 1000:.1f}ms)",
            )
    if len(stable.outputs) >= gates.min_requests and len(candidate.outputs) >= gates.min_requests:
        d = distance(stable.outputs, candidate.outputs)
        if d > gates.max_distance:
            return Verdict(
                Outcome.FAIL,
                f"output distribution distance {d:.2f} > {gates.max_distance:.2f} (KS)",
            )
    return Verdict(Outcome.PASS)
