"""The live quality metrics of labelled answers: small pure functions over (prediction, label)
pairs, so they are checked against known values and scipy (which the gateway does not import:
ranks come from numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from failwell.config.drift import QualityMetric

Pair = tuple[Any, Any]  # (prediction, label)


def accuracy(pairs: Sequence[Pair]) -> float:
    return sum(1 for p, y in pairs if p == y) / len(pairs)


def mae(pairs: Sequence[Pair]) -> float:
    return sum(abs(float(p) - float(y)) for p, y in pairs) / len(pairs)


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``values``, ties given the mean of their ranks (scipy's ``rankdata``)."""
    data = np.asarray(values, dtype=float)
    order = np.argsort(data, kind="mergesort")
    ordered = data[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    out = np.empty(len(data), dtype=float)
    out[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return out


def auc(pairs: Sequence[Pair]) -> float | None:
    """Area under the ROC curve of scores against binary labels (Mann-Whitney, ties halved);
    None while one class is missing."""
    positives = sum(1 for _, y in pairs if y)
    negatives = len(pairs) - positives
    if positives == 0 or negatives == 0:
        return None
    ranked = ranks([float(p) for p, _ in pairs])
    rank_sum = sum(r for r, (_, y) in zip(ranked, pairs, strict=True) if y)
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def score(metric: QualityMetric, pairs: Sequence[Pair]) -> float | None:
    if not pairs:
        return None
    if metric is QualityMetric.ACCURACY:
        return accuracy(pairs)
    if metric is QualityMetric.MAE:
        return mae(pairs)
    return auc(pairs)


def worse(metric: QualityMetric, value: float, objective: float) -> bool:
    """Whether ``value`` misses ``objective`` (lower is better for mae only)."""
    return value > objective if metric is QualityMetric.MAE else value < objective


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
