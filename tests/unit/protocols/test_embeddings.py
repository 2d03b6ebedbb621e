"""The embeddings wire codec and the config rules of an embeddings route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from failwell.config import parse_config
from failwell.errors import ConfigError, InvalidInput
from failwell.protocols.embeddings import check_answer, decode_request, embeddings


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "embed", **fields}).encode()


def test_fields_pass_through_and_inputs_are_checked() -> None:
    assert decode_request(body(input=["a", "b"], dimensions=8, x=1)) == (
        "embed",
        {"input": ["a", "b"], "dimensions": 8, "x": 1},
    )
    assert decode_request(body(input=[[1, 2], [3]]))[1]["input"] == [[1, 2], [3]]
    bad: dict[str, Any]
    for bad in (
        {"input": 5},
        {"input": []},
        {"input": ["a", 1]},
        {},
        {"input": "a", "dimensions": "8"},
    ):
        with pytest.raises(InvalidInput) as info:
            decode_request(body(**bad))
        assert info.value.field in ("input", "dimensions")


def test_answers_of_tiers_that_are_not_models_and_upstream_checks() -> None:
    made = embeddings("static", [0.5, 0.5], {"input": ["a", "b"]})
    assert [d["embedding"] for d in made["data"]] == [[0.5, 0.5], [0.5, 0.5]]
    assert embeddings("static", {"embedding": [1.0]}, {"input": [1, 2, 3]})["data"][0][
        "embedding"
    ] == [1.0]
    good = {"data": [{"embedding": [0.1, 0.2]}]}
    assert check_answer(good, 2) is None
    assert check_answer(good, 3) is not None
    assert check_answer({"data": []}, 2) is not None
    assert check_answer({"data": [{"embedding": "AAAA"}]}, 2) is None  # base64, as asked


def config(small_dim: int | None, kind: str = "embeddings") -> dict[str, Any]:
    replica = [{"url": "http://127.0.0.1:9"}]
    return {
        "backends": {
            "large": {"protocol": "openai", "dimension": 8, "replicas": replica},
            "small": {"protocol": "openai", "dimension": small_dim, "replicas": replica},
        },
        "routes": {
            "embed": {
                "kind": kind,
                "tiers": [{"name": "p", "backend": "large"}, {"name": "f", "backend": "small"}],
            }
        },
    }


def test_an_embeddings_route_needs_one_declared_dimension() -> None:
    parse_config(config(8), resolve=False)
    with pytest.raises(ConfigError) as mismatch:
        parse_config(config(4), resolve=False)
    assert "routes.embed.tiers: " in str(mismatch.value) and "p 8, f 4" in str(mismatch.value)
    with pytest.raises(ConfigError) as undeclared:
        parse_config(config(None), resolve=False)
    assert "routes.embed.tiers[1].backend" in str(undeclared.value)
    with pytest.raises(ConfigError) as chat:
        parse_config(config(8, kind="chat"), resolve=False)
    assert "embeddings backend" in str(chat.value)
