"""The gate's checks of a candidate against its route's schema and its own training data."""

from __future__ import annotations

import numpy as np

from failwell.config.training import GateConfig
from failwell.drift.stats import reference_of
from failwell.training.fit import RouteSchema, drift_problems, schema_problems, with_outputs
from failwell.training.gate import judge


def rows(n: int, shift: float = 0.0, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    return [
        {"a": float(v), "country": "de" if i % 3 else "fr"}
        for i, v in enumerate(rng.normal(shift, 1.0, n))
    ]


def test_schema_names_every_misfit() -> None:
    ref = reference_of([{**r, "output.score": 0.5} for r in rows(200)])
    fits = RouteSchema("r", {"a": "float", "country": "str"}, ("score",))
    assert schema_problems(fits, ref, [{"score": 0.1}] * 3) == []
    assert schema_problems(fits, ref, None) == []  # no held-out answers: nothing to check

    wrong = RouteSchema("r", {"a": "str", "b": "int", "tags": "list[str]"}, ("label",))
    problems = schema_problems(wrong, ref, [{"score": 0.1}, {"label": 1}])
    assert problems == [
        "input 'a' is str on route 'r'; not so in training",
        "input 'b' of route 'r' is not in the training data",
        "trained on ['country'], which route 'r' does not take",
        "1 held-out answers lack output 'label' that the route reads",
    ]


def test_held_out_inputs_that_drift_from_the_training_data_are_named() -> None:
    ref = reference_of(rows(2000))
    assert drift_problems(ref, rows(500, seed=1), 0.25) == []
    problems = drift_problems(ref, rows(500, shift=1.5, seed=1), 0.25)
    assert len(problems) == 1 and problems[0].startswith("held-out 'a' drifts")


def test_the_verdict_carries_the_problems_and_outputs_join_the_reference() -> None:
    gate = GateConfig(metric="auc")
    verdict = judge(
        gate, {"auc": 0.9}, None, ["input 'b' of route 'r' is not in the training data"]
    )
    assert not verdict["passed"]
    assert verdict["reason"] == "input 'b' of route 'r' is not in the training data"
    assert judge(gate, {"auc": 0.9}, None)["passed"]

    bare = reference_of(rows(100)).as_json()
    outputs = [{"score": i / 100, "label": i % 2} for i in range(100)]
    full = with_outputs(bare, outputs)
    assert set(full["features"]) == {"a", "country", "output.score", "output.label"}
    assert with_outputs(full, [{"other": 1}]) is full  # outputs already described: kept
