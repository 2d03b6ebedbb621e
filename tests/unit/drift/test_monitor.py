"""Drift statistics against scipy on known distributions, their power and false alarms with
fixed seeds, and the monitor's window and verdicts."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

from failwell.config.drift import DriftConfig
from failwell.config.models import RouteConfig
from failwell.contracts import Answer, Exchange
from failwell.drift.monitor import DriftMonitor, RouteDrift
from failwell.drift.stats import (
    OTHER,
    CategoricalReference,
    NumericReference,
    Reference,
    categorical_distance,
    numeric_distance,
    psi,
    reference_of,
)

RNG = np.random.default_rng(7)
TRAIN = [
    {"x": float(v), "c": str(c)}
    for v, c in zip(
        RNG.normal(0, 1, 5000), RNG.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2]), strict=True
    )
]
REF = reference_of(TRAIN)


def _numeric(name: str) -> NumericReference:
    found = REF.features[name]
    assert isinstance(found, NumericReference)
    return found


def _categorical(name: str) -> CategoricalReference:
    found = REF.features[name]
    assert isinstance(found, CategoricalReference)
    return found


X, C = _numeric("x"), _categorical("c")


def test_reference_bins_shares_and_round_trip() -> None:
    x = X
    assert len(x.shares) == 10 and abs(sum(x.shares) - 1) < 1e-9
    assert all(abs(s - 0.1) < 0.01 for s in x.shares)
    c = C
    assert c.shares["a"] == pytest.approx(0.5, abs=0.03)
    assert Reference.from_json(REF.as_json()) == REF


def test_psi_is_the_textbook_formula() -> None:
    e, a = [0.25, 0.25, 0.5], [0.2, 0.3, 0.5]
    expected = sum((ai - ei) * np.log(ai / ei) for ei, ai in zip(e, a, strict=True))
    assert psi(e, a) == pytest.approx(expected)
    assert psi(e, e) == 0


def test_ks_and_chi_square_agree_with_scipy() -> None:
    window = np.random.default_rng(1).normal(0.3, 1, 800)
    ref = X
    found = numeric_distance("x", ref, list(window))
    direct = stats.ks_2samp(window, np.asarray(ref.sample))
    assert found.p_value == pytest.approx(direct.pvalue) and found.statistic == pytest.approx(
        direct.statistic
    )
    values = ["a"] * 300 + ["b"] * 300 + ["c"] * 300 + ["zzz"] * 100
    cat = categorical_distance("c", C, values)
    shares = C.shares
    order = sorted(set(shares) | {OTHER})
    observed = [values.count(k) if k != OTHER else 100 for k in order]
    expected = np.array([max(shares.get(k, 0), 1e-4) for k in order])
    direct_chi = stats.chisquare(observed, expected / expected.sum() * len(values))
    assert cat.p_value == pytest.approx(direct_chi.pvalue)


def _drifts(values: list[float]) -> bool:
    found = numeric_distance("x", X, values)
    return found.psi > 0.2 or found.p_value < 0.001


def test_a_half_sd_shift_is_found_in_a_window_of_1000() -> None:
    for seed in range(20):
        window = np.random.default_rng(100 + seed).normal(0.5, 1, 1000)
        assert _drifts(list(window)), seed


def test_at_most_one_false_alarm_in_100_windows_without_drift() -> None:
    alarms = sum(
        _drifts(list(np.random.default_rng(1000 + s).normal(0, 1, 1000))) for s in range(100)
    )
    assert alarms <= 1, alarms


def _monitor(cfg: DriftConfig) -> tuple[DriftMonitor, list[tuple[Any, ...]]]:
    raised: list[tuple[Any, ...]] = []
    monitor = DriftMonitor(CollectorRegistry(), lambda *a: raised.append(a))
    route = RouteConfig.model_validate(
        {
            "input": {"x": "float", "c": "str"},
            "tiers": [{"name": "s", "value": 1}],
            "drift": cfg.model_dump(),
        }
    )
    monitor.bind({"r": route}, {"r": REF})
    return monitor, raised


def _exchange(x: float, c: str, outputs: Any = None) -> Exchange:
    ex = Exchange("id", {}, route="r", status=200, inputs={"x": x, "c": c})
    ex.answer = Answer(outputs, "s", "full", "b", None, 0.001, 0)
    return ex


def test_the_monitor_samples_judges_and_alerts_once_there_are_enough_values() -> None:
    monitor, raised = _monitor(DriftConfig(reference="unused", window=1000, min_samples=500))
    rng = np.random.default_rng(3)
    for v in rng.normal(0, 1, 400):
        monitor(_exchange(float(v), "a", {"score": 0.5}))
    asyncio.run(monitor.evaluate())
    assert monitor.status()["r"]["features"] == {}  # below min_samples: not judged
    for v in rng.normal(1.0, 1, 1000):
        monitor(_exchange(float(v), "b"))
    asyncio.run(monitor.evaluate())
    status = monitor.status()["r"]
    assert status["window"] == 1000 and "x" in status["drifting"]
    key, firing, detail, name = raised[-1]
    assert key == ("r", "drift", "ticket") and firing and name == "failwell_drift"
    assert "x" in detail["features"]


def test_a_reload_with_the_same_drift_config_keeps_the_window() -> None:
    cfg = DriftConfig(reference="unused")
    monitor, _ = _monitor(cfg)
    monitor(_exchange(0.1, "a"))
    kept: RouteDrift = monitor.routes["r"]
    route = RouteConfig.model_validate(
        {
            "input": {"x": "float", "c": "str"},
            "deadline": "2s",
            "tiers": [{"name": "s", "value": 1}],
            "drift": cfg.model_dump(),
        }
    )
    monitor.bind({"r": route}, {"r": REF})
    assert monitor.routes["r"] is kept and len(kept.window) == 1


def test_a_route_follows_the_reference_of_the_version_it_serves() -> None:
    serving: dict[str, Any] = {"ref": "m@v1", "reference": REF.as_json()}
    monitor, raised = _monitor(DriftConfig(window=1000, min_samples=200))
    route = RouteConfig.model_validate(
        {
            "input": {"x": "float", "c": "str"},
            "tiers": [{"name": "s", "value": 1}],
            "drift": {"window": 1000, "min_samples": 200},
        }
    )
    monitor.bind({"r": route}, {}, {"r": lambda: (serving["ref"], serving["reference"])})
    rng = np.random.default_rng(4)
    for v in rng.normal(1.0, 1, 500):
        monitor(_exchange(float(v), "a"))
    asyncio.run(monitor.evaluate())
    status = monitor.status()["r"]
    assert status["reference_version"] == "m@v1" and "x" in status["drifting"]
    # v2 was trained on the shifted data: the monitor switches to its reference, afresh
    shifted = [{"x": float(v), "c": "a"} for v in rng.normal(1.0, 1, 3000)]
    serving.update(ref="m@v2", reference=reference_of(shifted).as_json())
    asyncio.run(monitor.evaluate())
    status = monitor.status()["r"]
    assert status["reference_version"] == "m@v2" and status["window"] == 0
    assert raised[-1][:2] == (("r", "drift", "ticket"), False)  # resolved on the switch
    for v in rng.normal(1.0, 1, 500):
        monitor(_exchange(float(v), "a"))
    asyncio.run(monitor.evaluate())
    assert monitor.status()["r"]["drifting"] == [] and "x" in monitor.status()["r"]["features"]
