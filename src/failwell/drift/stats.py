"""Reference statistics of a model's inputs and outputs, and the distances of a live window
from them: population stability index (PSI) on shared bins, the two-sample Kolmogorov-Smirnov
test for numbers, Pearson's chi-square for categories.

scipy (~90 MiB and seconds to import) is loaded on first use, in the drift monitor's thread
(``preload`` does it at start-up when a route watches drift): a gateway with no drift
configured never loads it.

A ``Reference`` is plain data (JSON), made once from training data or a sample of traffic
and stored with the model (``failwell drift reference``): per numeric feature, quantile bin
edges, their shares and a sample of at most ``SAMPLE`` values (for KS); per categorical
feature, the shares of the ``TOP`` most frequent values and of everything else (``"other"``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINS = 10
SAMPLE = 2000
TOP = 20
OTHER = "\x00other"
EPS = 1e-4  # floor of a bin's share in PSI, so an empty bin does not make it infinite


@dataclass(frozen=True)
class NumericReference:
    edges: tuple[float, ...]  # inner edges: BINS - 1 quantiles
    shares: tuple[float, ...]
    sample: tuple[float, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": self.edges,
            "shares": self.shares,
            "sample": self.sample,
        }


@dataclass(frozen=True)
class CategoricalReference:
    shares: dict[str, float]  # the top values and OTHER

    def as_json(self) -> dict[str, Any]:
        return {"kind": "categorical", "shares": self.shares}


FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class Reference:
    features: dict[str, FeatureReference]
    count: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "features": {k: v.as_json() for k, v in self.features.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reference:
        features: dict[str, FeatureReference] = {}
        for name, f in data["features"].items():
            if f["kind"] == "numeric":
                features[name] = NumericReference(
                    tuple(f["edges"]), tuple(f["shares"]), tuple(f["sample"])
                )
            else:
                features[name] = CategoricalReference(dict(f["shares"]))
        return cls(features, int(data.get("count", 0)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def numeric_reference(values: Sequence[float], seed: int = 0) -> NumericReference:
    data = np.asarray(values, dtype=float)
    edges = tuple(float(e) for e in np.unique(np.quantile(data, np.linspace(0, 1, BINS + 1)[1:-1])))
    shares = tuple(float(s) for s in _bin_shares(data, edges))
    rng = np.random.default_rng(seed)
    sample = data if len(data) <= SAMPLE else rng.choice(data, SAMPLE, replace=False)
    return NumericReference(edges, shares, tuple(float(v) for v in sample))


def categorical_reference(values: Iterable[Any]) -> CategoricalReference:
    counts = Counter(str(v) for v in values)
    total = sum(counts.values()) or 1
    shares = {value: n / total for value, n in counts.most_common(TOP)}
    rest = 1.0 - sum(shares.values())
    if rest > 0:
        shares[OTHER] = rest
    return CategoricalReference(shares)


def reference_of(rows: Sequence[dict[str, Any]], seed: int = 0) -> Reference:
    """The reference of ``rows`` (dicts of feature values): numbers are numeric features,
    everything else (strings, booleans) categorical; lists and nested values are skipped."""
    names = sorted({k for row in rows for k in row})
    features: dict[str, FeatureReference] = {}
    for name in names:
        values = [row[name] for row in rows if name in row]
        if values and all(_is_number(v) for v in values):
            features[name] = numeric_reference([float(v) for v in values], seed)
        elif values and all(isinstance(v, str | bool | int) for v in values):
            features[name] = categorical_reference(values)
    return Reference(features, len(rows))


def _bin_shares(data: np.ndarray[Any, Any], edges: Sequence[float]) -> np.ndarray[Any, Any]:
    counts = np.bincount(np.searchsorted(edges, data, side="right"), minlength=len(edges) + 1)
    return counts / max(len(data), 1)


def psi(
    expected: Sequence[float] | np.ndarray[Any, Any], actual: Sequence[float] | np.ndarray[Any, Any]
) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), EPS)
    a = np.maximum(np.asarray(actual, dtype=float), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class Distance:
    """How far one feature's window is from its reference."""

    feature: str
    kind: str  # numeric or categorical
    n: int
    psi: float
    p_value: float  # KS (numeric) or chi-square (categorical)
    statistic: float
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "psi": round(self.psi, 5),
            "p_value": self.p_value,
            "statistic": round(self.statistic, 5),
            **self.detail,
        }


def preload() -> None:
    """Import scipy's statistics now (blocking: call it in a thread)."""
    import scipy.stats  # noqa: F401


def numeric_distance(name: str, ref: NumericReference, values: Sequence[float]) -> Distance:
    data = np.asarray(values, dtype=float)
    shares = _bin_shares(data, ref.edges)
    from scipy import stats

    ks = stats.ks_2samp(data, np.asarray(ref.sample, dtype=float))
    return Distance(
        name, "numeric", len(data), psi(ref.shares, shares), float(ks.pvalue), float(ks.statistic)
    )


def categorical_distance(name: str, ref: CategoricalReference, values: Sequence[Any]) -> Distance:
    known = set(ref.shares)
    counts = Counter(str(v) if str(v) in known else OTHER for v in values)
    categories = sorted(known | set(counts))
    n = len(values)
    observed = np.array([counts.get(c, 0) for c in categories], dtype=float)
    expected_share = np.array([max(ref.shares.get(c, 0.0), EPS) for c in categories])
    expected = expected_share / expected_share.sum() * n
    from scipy import stats

    chi = stats.chisquare(observed, expected)
    return Distance(
        name,
        "categorical",
        n,
        psi(expected_share / expected_share.sum(), observed / max(n, 1)),
        float(chi.pvalue),
        float(chi.statistic),
    )


def distance(name: str, ref: FeatureReference, values: Sequence[Any]) -> Distance | None:
    """The window's distance from ``ref``; None when the window holds no usable value."""
    if isinstance(ref, NumericReference):
        numbers = [float(v) for v in values if _is_number(v)]
        return numeric_distance(name, ref, numbers) if numbers else None
    return categorical_distance(name, ref, values) if values else None
