"""Per-row fallback with real processes: tritonclient → the gateway → the demo model server's
image scorer (FP32 [-1, 3, H, W] batches). Tier 1 answers a batch, is SIGKILLed (or answers
500 from then on), and the next
batch (two rows seen before, two rows the rules answer, two rows nothing knows) comes back with
its shape and datatype intact, each row from the first tier that could answer it and labelled
so in the response's parameters; with the default (``fallback: batch``) the batch is answered
whole by one tier, as before."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.integration.conftest import ModelServer, Stack
from tests.integration.test_tensors import infer, scorer, scorer_backend


def rows_config(stack: Stack, server: ModelServer, fallback: str) -> dict[str, Any]:
    return stack.config(
        backends={"scorer": scorer_backend(server)},
        routes={
            "images": {
                "tensors": {
                    "inputs": {"image": {"datatype": "FP32", "shape": [-1, 3, -1, -1]}},
                    "outputs": {"score": {"datatype": "FP32", "shape": [-1, 1]}},
                },
                "deadline": "8s",
                "fallback": fallback,
                "tiers": [
                    {"name": "primary", "backend": "scorer"},
                    {"name": "rules", "rules": "failwell.testing.models:positive_rows_rule"},
                    {"name": "cache"},
                    {"name": "static", "value": {"score": [-1.0]}},
                ],
            }
        },
    )


def images(signs: str, seed: int) -> np.ndarray[Any, Any]:
    """One row per sign: a '+' row's first element is positive (the rules answer it)."""
    x = np.random.default_rng(seed).uniform(0.1, 1, size=(len(signs), 3, 16, 16))
    for i, sign in enumerate(signs):
        x[i, 0, 0, 0] *= 1 if sign == "+" else -1
    return x.astype(np.float32)


@pytest.mark.parametrize(
    "binary, failure",
    [(True, "sigkill"), (False, "sigkill"), (True, "500")],
    ids=["binary-sigkill", "json-sigkill", "binary-500"],
)
def test_a_batch_tier_one_fails_is_answered_row_by_row(
    stack: Stack, binary: bool, failure: str
) -> None:
    server = scorer(stack)
    gw = stack.gateway(rows_config(stack, server, "rows"))
    seen = images("---", seed=1)
    first = infer(gw, seen, binary)
    assert first.get_response()["parameters"]["failwell_tier"] == "primary"
    assert "failwell_tiers" not in first.get_response()["parameters"]
    upstream = first.as_numpy("score")
    assert upstream is not None

    if failure == "sigkill":
        server.kill()
    else:
        server.control("error")  # every inference a 500
    x = np.concatenate([seen[[2, 0]], images("++--", seed=2)])
    result = infer(gw, x, binary)
    if failure == "500":
        assert server.requests() == 2  # the batch reached tier 1 and was refused there
    params = result.get_response()["parameters"]
    assert params["failwell_tiers"] == "cache,cache,rules,rules,static,static"
    assert (params["failwell_tier"], params["failwell_quality"]) == ("static", "minimal")
    score = result.as_numpy("score")
    assert score is not None and score.dtype == np.float32 and score.shape == (6, 1)
    row_size = float(3 * 16 * 16)
    expected = [upstream[2, 0], upstream[0, 0], row_size, row_size, -1.0, -1.0]
    assert score[:, 0].tolist() == [float(np.float32(v)) for v in expected]


def test_the_default_answers_the_batch_whole_from_one_tier(stack: Stack) -> None:
    server = scorer(stack)
    gw = stack.gateway(rows_config(stack, server, "batch"))
    seen = images("---", seed=1)
    assert infer(gw, seen, True).get_response()["parameters"]["failwell_tier"] == "primary"

    server.kill()
    mixed = infer(gw, np.concatenate([seen[[2, 0]], images("++--", seed=2)]), True)
    params = mixed.get_response()["parameters"]
    assert params["failwell_tier"] == "static" and "failwell_tiers" not in params
    score = mixed.as_numpy("score")
    assert score is not None and score.tolist() == [[-1.0]] * 6
    again = infer(gw, seen, True)  # the very batch tier 1 answered: the cache, whole
    assert again.get_response()["parameters"]["failwell_tier"] == "cache"
