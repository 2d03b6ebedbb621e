"""Live quality from delayed labels: the metrics against known values and scikit-learn, and the
join of labels to remembered answers with its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import roc_auc_score

from failwell.config.drift import QualityMetric
from failwell.config.models import RouteConfig
from failwell.contracts import Answer, Exchange
from failwell.errors import Conflict, InvalidInput, NotFound
from failwell.quality.score import auc, ranks, score
from failwell.quality.watch import Label, QualityWatch
from failwell.testing import FakeClock


def test_metrics_on_known_values() -> None:
    assert score(QualityMetric.ACCURACY, [("a", "a"), ("b", "a"), (1, 1), (True, True)]) == 0.75
    assert score(QualityMetric.MAE, [(1.0, 2.0), (3, 1)]) == 1.5
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 400)
    scores = labels * 0.3 + rng.random(400)
    pairs = [(float(s), int(y)) for s, y in zip(scores, labels, strict=True)]
    assert auc(pairs) == pytest.approx(roc_auc_score(labels, scores))
    assert auc([(0.1, 1), (0.2, 1)]) is None  # one class only


def watch(**quality: Any) -> tuple[QualityWatch, FakeClock, list[tuple[Any, ...]]]:
    clock, raised = FakeClock(), []
    w = QualityWatch(CollectorRegistry(), clock, lambda *a: raised.append(a))
    route = RouteConfig.model_validate(
        {"input": {"x": "float"}, "tiers": [{"name": "s", "value": 1}], "quality": quality}
    )
    w.bind({"r": route})
    return w, clock, raised


def answered(w: QualityWatch, rid: str, outputs: Any) -> None:
    ex = Exchange(rid, {}, route="r", status=200, front_end="predict", inputs={"x": 1.0})
    ex.answer = Answer(outputs, "s", "full", "b", None, 0.001, 0)
    w(ex)


def test_labels_join_answers_and_the_metric_alerts_below_its_objective() -> None:
    w, _, raised = watch(metric="accuracy", output="cls", objective=0.9, min_labels=4)
    for i in range(6):
        answered(w, f"r{i}", {"cls": "cat" if i % 2 else "dog", "p": 0.5})
    result = w.feedback("r", [Label("r0", "dog"), Label("r1", "cat"), Label("r2", "dog")])
    assert result == {
        "accepted": 3,
        "metric": "accuracy",
        "value": 1.0,
        "labels": 3,
        "judged": False,
    }
    result = w.feedback("r", [Label("r3", "dog")])  # wrong: 3 of 4
    assert result["judged"] and result["value"] == 0.75
    key, firing, detail, name = raised[-1]
    assert key == ("r", "quality_live", "page") and firing and name == "failwell_quality_live"
    assert detail["value"] == 0.75 and detail["objective"] == 0.9


def test_unknown_duplicate_expired_and_mistyped_labels_are_refused_whole() -> None:
    w, clock, _ = watch(metric="mae", output="score", max_age="60s")
    answered(w, "a", {"score": 0.5})
    answered(w, "b", {"score": 0.7})
    answered(w, "c", {"label": "no score"})  # no prediction at outputs.score: not remembered
    with pytest.raises(NotFound):
        w.feedback("r", [Label("a", 1.0), Label("nope", 1.0)])
    assert w.routes["r"].waiting.keys() == {"a", "b"}  # nothing applied
    with pytest.raises(InvalidInput) as bad:
        w.feedback("r", [Label("a", "one")])
    assert bad.value.field == "label"
    with pytest.raises(Conflict):
        w.feedback("r", [Label("a", 1.0), Label("a", 1.0)])
    assert w.feedback("r", [Label("a", 1.0)])["value"] == 0.5
    with pytest.raises(Conflict):
        w.feedback("r", [Label("a", 1.0)])
    clock.advance(61)
    with pytest.raises(NotFound):
        w.feedback("r", [Label("b", 1.0)])
    with pytest.raises(NotFound):
        w.feedback("other", [Label("a", 1.0)])


def test_ranks_match_scipy_rankdata() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    for values in (
        [3.0, 1.0, 2.0],
        [1.0, 1.0, 1.0],
        [0.5, 0.2, 0.5, 0.9, 0.2, 0.5],
        list(rng.integers(0, 5, 200).astype(float)),  # many ties
        list(rng.random(300)),
    ):
        assert ranks(values) == pytest.approx(rankdata(values))
