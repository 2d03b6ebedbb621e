"""The live quality metrics of labelled answers: small pure functions over (prediction, label)
pairs, so they are checked against known values and scipy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy.stats import rankdata

from failwell.config.drift import QualityMetric

Pair = tuple[Any, Any]  # (prediction, label)


def accuracy(pairs: Sequence[Pair]) -> float:
    return sum(1 for p, y in pairs if p == y) / len(pairs)


def mae(pairs: Sequence[Pair]) -> float:
    return sum(abs(float(p) - float(y)) for p, y in pairs) / len(pairs)


def auc(pairs: Sequence[Pair]) -> float | None:
    """Area under the ROC curve of scores against binary labels (Mann-Whitney, ties halved);
    None while one class is missing."""
    positives = sum(1 for _, y in pairs if y)
    negatives = len(pairs) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata([float(p) for p, _ in pairs])
    rank_sum = sum(r for r, (_, y) in zip(ranks, pairs, strict=True) if y)
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
