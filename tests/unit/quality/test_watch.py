"""Live quality from delayed labels: the metrics against known values and scikit-learn, and the
join of labels to remembered answers with its errors."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import roc_auc_score

from failwell.config.drift import QualityMetric
from failwell.config.models import RouteConfig
from failwell.contracts import Answer, Exchange
from failwell.errors import Conflict, FleetUnreachable, InvalidInput, NotFound
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


def feedback(w: QualityWatch, route: str, items: list[Label]) -> dict[str, Any]:
    return asyncio.run(w.feedback(route, items))


def answered(w: QualityWatch, rid: str, outputs: Any) -> None:
    ex = Exchange(rid, {}, route="r", status=200, front_end="predict", inputs={"x": 1.0})
    ex.answer = Answer(outputs, "s", "full", "b", None, 0.001, 0)
    w(ex)


def test_labels_join_answers_and_the_metric_alerts_below_its_objective() -> None:
    w, _, raised = watch(metric="accuracy", output="cls", objective=0.9, min_labels=4)
    for i in range(6):
        answered(w, f"r{i}", {"cls": "cat" if i % 2 else "dog", "p": 0.5})
    result = feedback(w, "r", [Label("r0", "dog"), Label("r1", "cat"), Label("r2", "dog")])
    assert result == {
        "accepted": 3,
        "metric": "accuracy",
        "value": 1.0,
        "labels": 3,
        "judged": False,
        "scope": "local",
    }
    result = feedback(w, "r", [Label("r3", "dog")])  # wrong: 3 of 4
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
        feedback(w, "r", [Label("a", 1.0), Label("nope", 1.0)])
    assert w.routes["r"].waiting.keys() == {"a", "b"}  # nothing applied
    with pytest.raises(InvalidInput) as bad:
        feedback(w, "r", [Label("a", "one")])
    assert bad.value.field == "label"
    with pytest.raises(Conflict):
        feedback(w, "r", [Label("a", 1.0), Label("a", 1.0)])
    assert feedback(w, "r", [Label("a", 1.0)])["value"] == 0.5
    with pytest.raises(Conflict):
        feedback(w, "r", [Label("a", 1.0)])
    clock.advance(61)
    with pytest.raises(NotFound):
        feedback(w, "r", [Label("b", 1.0)])
    with pytest.raises(NotFound):
        feedback(w, "other", [Label("a", 1.0)])


class Shared:
    """A fake fleet (``quality/shared.py``): ``answers`` and ``labelled`` stand for Redis;
    ``up`` False makes every read answer None, as an unreachable Redis does."""

    def __init__(self) -> None:
        self.up = True
        self.answers: dict[str, tuple[Any, float]] = {}
        self.labelled: set[str] = set()
        self.pairs: list[Any] = []
        self.remembered: list[str] = []
        self.deferred: list[Any] = []

    def remember(self, route: str, config: Any, rid: str, prediction: Any, at: float) -> None:
        self.remembered.append(rid)

    async def find(self, route: str, ids: Any) -> Any:
        if not self.up:
            return None
        found = {i: self.answers[i] for i in ids if i in self.answers}
        return found, {i for i in ids if i in self.labelled}

    async def claim(self, route: str, config: Any, joined: Any) -> Any:
        if not self.up:
            return None
        taken = [rid for rid, _, _ in joined if rid in self.labelled]
        if taken:
            return taken[0], []
        self.labelled |= {rid for rid, _, _ in joined}
        self.pairs = [pair for _, _, pair in reversed(joined)] + self.pairs
        return None, list(self.pairs)

    def defer(self, route: str, config: Any, joined: Any) -> None:
        self.deferred += joined

    async def window(self, route: str, config: Any) -> Any:
        return list(self.pairs) if self.up else None


class Leader:
    def __init__(self, leading: bool) -> None:
        self.leading = leading

    def on_change(self, callback: Any) -> None:
        """Never changes."""


def shared_watch(leading: bool) -> tuple[QualityWatch, Shared, list[tuple[Any, ...]]]:
    w, _, raised = watch(metric="accuracy", output="cls", objective=0.9, min_labels=2)
    shared = Shared()
    w.share(shared, Leader(leading), 5.0)
    return w, shared, raised


def test_in_a_fleet_labels_join_answers_served_elsewhere_once_and_score_the_fleets_window() -> None:
    w, shared, raised = shared_watch(leading=False)
    answered(w, "here", {"cls": "dog"})
    assert shared.remembered == ["here"]
    shared.answers["there"] = ("cat", 1000.0)  # another process served it
    shared.pairs = [("dog", "cat")] * 3  # labels other processes took
    result = feedback(w, "r", [Label("here", "dog"), Label("there", "cat")])
    assert (result["value"], result["labels"], result["scope"]) == (0.4, 5, "fleet")
    assert raised == []  # a follower sets its gauge but never alerts
    with pytest.raises(Conflict):  # labelled elsewhere first: refused here too
        feedback(w, "r", [Label("there", "cat")])
    answered(w, "again", {"cls": "dog"})
    shared.labelled.add("again")  # another process took its label first
    with pytest.raises(Conflict):
        feedback(w, "r", [Label("again", "dog")])
    assert "again" in w.routes["r"].waiting  # a refused batch changes nothing here
    (family,) = w.labels.collect()
    counted = {s.labels["result"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert counted == {"accepted": 2, "conflict": 2}

    leader, shared, raised = shared_watch(leading=True)
    shared.pairs = [("dog", "cat")] * 3
    leader.judge(leader.routes["r"], asyncio.run(shared.window("r", None)))
    (key, firing, detail, _) = raised[-1]
    assert key == ("r", "quality_live", "page") and firing and detail["value"] == 0.0


def test_cut_off_from_the_fleet_labels_join_local_answers_and_reach_the_fleet_later() -> None:
    w, shared, _ = shared_watch(leading=True)
    answered(w, "here", {"cls": "dog"})
    shared.answers["there"] = ("cat", 1000.0)
    shared.up = False
    with pytest.raises(FleetUnreachable) as missing:  # 503: send it again later
        feedback(w, "r", [Label("there", "cat")])
    assert "cannot reach the fleet's Redis" in str(missing.value)
    result = feedback(w, "r", [Label("here", "dog")])
    assert (result["value"], result["labels"], result["scope"]) == (1.0, 1, "local")
    assert [rid for rid, _, _ in shared.deferred] == ["here"]
    with pytest.raises(Conflict):  # guarded here meanwhile
        feedback(w, "r", [Label("here", "dog")])


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
