"""Per-row fallback (``fallback: rows``) in process: once tier 1 fails a batch, each row comes
from the first later tier that can answer it (the cache per row, rules for some rows, a model
for the rows left as one sub-batch, static for the rest), in row order, labelled per row; the
default (``batch``) answers the batch whole, as before."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from failwell.config import parse_config
from failwell.config.log import InputPolicy
from failwell.contracts import Answer, Exchange
from failwell.errors import ConfigError
from failwell.gateway.core import Gateway
from failwell.log.recorder import inference_record
from tests.unit.routing.test_tensor_schema import config, infer, run, triton_body

RULES: dict[str, Any] = {"name": "rules", "rules": "failwell.testing.models:positive_rows_rule"}
TIERS: list[dict[str, Any]] = [{"name": "model", "backend": "m"}, RULES, {"name": "cache"}]
STATIC: dict[str, Any] = {"name": "static", "value": {"score": [0.5]}}


def images(signs: str, seed: int) -> np.ndarray[Any, Any]:
    """A batch with one row per sign: a '+' row's first element is positive (rules answer
    it), a '-' row's negative (they do not)."""
    x = np.random.default_rng(seed).uniform(0.1, 1, size=(len(signs), 3, 4, 4))
    for i, sign in enumerate(signs):
        x[i, 0, 0, 0] *= 1 if sign == "+" else -1
    return x.astype(np.float32)


def sums(x: np.ndarray[Any, Any]) -> list[float]:
    return [float(v) for v in x.reshape(len(x), -1).sum(axis=1, dtype=np.float32)]


def parameters(body: bytes, headers: dict[bytes, bytes]) -> tuple[dict[str, Any], Any]:
    length = headers.get(b"inference-header-content-length")
    result = triton.InferenceServerClient.parse_response_body(
        body, header_length=int(length) if length else None
    )
    return result.get_response()["parameters"], result.as_numpy("score")


def test_each_row_comes_from_the_first_tier_that_can_answer_it() -> None:
    seen = images("---", seed=1)  # answered by tier 1: stored whole and per row
    new = images("++--", seed=2)
    x = np.concatenate([seen[:2], new])  # cache, cache, rules, rules, static, static

    async def body(gw: Gateway) -> None:
        first = await gw.predict("img", {"x": seen})
        assert first.tier == "model" and first.row_tiers is None
        await asyncio.sleep(0)  # the rows are stored right after the answer
        assert len(gw.cache) == 4  # the batch, and each of its 3 rows
        gw.faults.flags.set("tier:img/model", False)

        response = await infer(gw, *triton_body({"x": x}, binary=True))
        assert response.status == 200, response.body
        params, score = parameters(response.body, response.headers)
        assert params["failwell_tiers"] == "cache,cache,rules,rules,static,static"
        assert (params["failwell_tier"], params["failwell_quality"]) == ("static", "minimal")
        assert response.headers[b"x-failwell-tier"] == b"static"
        assert score.dtype == np.float32 and score.shape == (6, 1)
        assert np.allclose(score[:, 0], [*sums(seen[:2]), 48.0, 48.0, 0.5, 0.5])

        answer = await gw.predict("img", {"x": x})
        assert answer.row_tiers == ["cache", "cache", "rules", "rules", "static", "static"]
        assert answer.age is not None and answer.tier_index == 3
        assert [(f.tier, f.kind) for f in answer.failures] == [("model", "switched_off")]

    run(config([*TIERS, STATIC], fallback="rows"), body)


def test_a_model_tier_gets_only_the_rows_left_as_one_sub_batch_in_order() -> None:
    tiers = [
        {"name": "model", "backend": "broken"},
        RULES,
        {"name": "fallback", "backend": "m"},
        STATIC,
    ]
    x = images("-+-+-", seed=3)

    async def body(gw: Gateway) -> None:
        answer = await gw.predict("img", {"x": x})
        assert answer.row_tiers == ["fallback", "rules", "fallback", "rules", "fallback"]
        assert answer.tier == "fallback" and answer.backend == "m"
        score = answer.outputs["score"].array()
        assert np.allclose(score[:, 0], [sums(x)[0], 48.0, sums(x)[2], 48.0, sums(x)[4]])
        text = gw.metrics.render().decode()
        assert 'failwell_rows_total{route="img",tier="fallback"} 3.0' in text
        assert 'failwell_rows_total{route="img",tier="rules"} 2.0' in text
        assert 'failwell_requests_total{outcome="ok",route="img",tier="fallback"} 1.0' in text

    run(config(tiers, fallback="rows"), body)


def test_rows_no_tier_can_answer_fail_the_request_naming_every_tier() -> None:
    async def body(gw: Gateway) -> None:
        response = await infer(gw, *triton_body({"x": images("+-", seed=4)}, binary=False))
        assert response.status == 503, response.body
        assert b"cache_miss" in response.body and b"model" in response.body

    run(
        config([{"name": "model", "backend": "broken"}, RULES, {"name": "cache"}], fallback="rows"),
        body,
    )


def test_the_default_answers_the_batch_whole_and_stores_no_rows() -> None:
    seen = images("---", seed=1)
    x = np.concatenate([seen[:2], images("++--", seed=2)])

    async def body(gw: Gateway) -> None:
        assert (await gw.predict("img", {"x": seen})).tier == "model"
        await asyncio.sleep(0)
        assert len(gw.cache) == 1  # the batch only
        gw.faults.flags.set("tier:img/model", False)
        response = await infer(gw, *triton_body({"x": x}, binary=True))
        params, score = parameters(response.body, response.headers)
        assert "failwell_tiers" not in params and params["failwell_tier"] == "static"
        assert score.tolist() == [[0.5]] * 6
        answer = await gw.predict("img", {"x": x})
        assert answer.row_tiers is None
        assert [f.kind for f in answer.failures] == ["switched_off", "bad_shape", "cache_miss"]
        again = await gw.predict("img", {"x": seen})  # the same bytes: the whole batch cached
        assert again.tier == "cache" and again.row_tiers is None

    run(config([*TIERS, STATIC]), body)


def test_rows_and_batches_stored_by_tier_one_are_served_after_a_restart(tmp_path: Path) -> None:
    """The cache tier reads tensors back from the SQLite file (as encoded there), per row and
    whole."""
    seen = images("---", seed=5)
    cfg = copy.deepcopy(config([*TIERS, STATIC], fallback="rows"))
    cfg["gateway"]["cache"]["path"] = str(tmp_path / "cache.sqlite")

    async def before(gw: Gateway) -> None:
        assert (await gw.predict("img", {"x": seen})).tier == "model"

    run(cfg, before)
    cfg["routes"]["img"]["tiers"][0]["backend"] = "broken"

    async def after(gw: Gateway) -> None:
        x = np.concatenate([seen[[2, 1]], images("+", seed=6)])
        answer = await gw.predict("img", {"x": x})
        assert answer.row_tiers == ["cache", "cache", "rules"]
        score = answer.outputs["score"].array()
        assert score.dtype == np.float32 and np.allclose(score[:, 0], [*sums(x[:2]), 48.0])
        whole = await gw.predict("img", {"x": seen})
        assert whole.row_tiers == ["cache"] * 3 and whole.tier == "cache"
        assert np.allclose(whole.outputs["score"].array()[:, 0], sums(seen))

    run(cfg, after)


def test_a_batch_stored_before_the_route_answered_by_rows_is_still_served_whole(
    tmp_path: Path,
) -> None:
    seen = images("---", seed=7)
    cfg = copy.deepcopy(config([*TIERS, STATIC]))  # fallback: batch stores the batch whole, no rows
    cfg["gateway"]["cache"]["path"] = str(tmp_path / "cache.sqlite")

    async def before(gw: Gateway) -> None:
        assert (await gw.predict("img", {"x": seen})).tier == "model"

    run(cfg, before)
    cfg["routes"]["img"].update(fallback="rows")
    cfg["routes"]["img"]["tiers"][0]["backend"] = "broken"

    async def after(gw: Gateway) -> None:
        whole = await gw.predict("img", {"x": seen})
        assert whole.row_tiers == ["cache"] * 3
        assert np.allclose(whole.outputs["score"].array()[:, 0], sums(seen))
        part = await gw.predict("img", {"x": seen[:2]})  # no entry per row
        assert part.row_tiers == ["static", "static"]

    run(cfg, after)


def test_the_log_record_lists_each_rows_tier() -> None:
    ex = Exchange("r1", {}, front_end="v2", route="img", status=200)
    ex.answer = Answer(
        {}, "static", "minimal", "static", None, 0.01, 3, row_tiers=["cache", "static"]
    )
    record = inference_record(ex, InputPolicy.OMITTED)
    assert record is not None and record["row_tiers"] == ["cache", "static"]
    ex.answer.row_tiers = None
    record = inference_record(ex, InputPolicy.OMITTED)
    assert record is not None and "row_tiers" not in record


@pytest.mark.parametrize(
    "route, path, message",
    [
        ({"fallback": "sometimes"}, "routes.img.fallback", "'batch' or 'rows'"),
        (
            {"input": {"a": "str"}, "tensors": None, "fallback": "rows"},
            "routes.img.fallback",
            "needs a tensor route",
        ),
    ],
)
def test_a_bad_fallback_names_the_key(route: dict[str, Any], path: str, message: str) -> None:
    cfg = config([STATIC])
    cfg["routes"]["img"].update(route)
    if route.get("tensors", 0) is None:
        del cfg["routes"]["img"]["tensors"]
    with pytest.raises(ConfigError) as bad:
        parse_config(cfg)
    assert any(i.path == path and message in i.message for i in bad.value.issues), bad.value
