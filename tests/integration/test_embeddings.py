"""POST /v1/embeddings with the official openai client on real processes: tier 1, a smaller
tier-2 model of the same dimension, the static tier; bad input named; a dimension mismatch
between tiers is a config error."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
import yaml

from tests.integration.conftest import PY, ModelServer, Stack

DIM = 8


def embed_server(stack: Stack, name: str, label: str, dim: int = DIM) -> ModelServer:
    return ModelServer(stack, label, ["--embed-model", name, "--embed-dim", str(dim)])


def embed_config(
    stack: Stack, large: dict[str, Any], small: dict[str, Any], small_dim: int = DIM
) -> dict[str, Any]:
    return stack.config(
        backends={
            "large": {
                "protocol": "openai",
                "model": "embed-large",
                "dimension": DIM,
                "timeout": "2s",
                "replicas": [large],
            },
            "small": {
                "protocol": "openai",
                "model": "embed-small",
                "dimension": small_dim,
                "timeout": "2s",
                "replicas": [small],
            },
        },
        routes={
            "embed": {
                "kind": "embeddings",
                "deadline": "5s",
                "tiers": [
                    {"name": "primary", "backend": "large"},
                    {"name": "fallback", "backend": "small"},
                    {"name": "static", "value": [0.0] * DIM},
                ],
            }
        },
    )


def test_embeddings_through_tier_one_fallback_and_static(stack: Stack) -> None:
    large = embed_server(stack, "embed-large", "large")
    small = embed_server(stack, "embed-small", "small")
    gw = stack.gateway(embed_config(stack, large.replica(), small.replica()))
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)

    raw = client.embeddings.with_raw_response.create(
        model="embed", input=["a book about ships", "a garden tool"], dimensions=DIM, user="u1"
    )
    got = raw.parse()
    assert raw.headers["x-failwell-tier"] == "primary"
    assert got.model == "embed-large" and [len(d.embedding) for d in got.data] == [DIM, DIM]
    assert got.usage.prompt_tokens == 7
    assert json.loads(raw.text)["failwell"]["backend"] == "large"

    large.control("error", status=503)
    raw = client.embeddings.with_raw_response.create(model="embed", input="a book about ships")
    assert raw.headers["x-failwell-tier"] == "fallback" and raw.parse().model == "embed-small"

    small.kill()
    raw = client.embeddings.with_raw_response.create(model="embed", input=["x", "y", "z"])
    assert raw.headers["x-failwell-tier"] == "static"
    assert [d.embedding for d in raw.parse().data] == [[0.0] * DIM] * 3
    assert "embed" in [m.id for m in client.models.list().data]

    for body, field in (({"input": 5}, "input"), ({"input": [1.5]}, "input"), ({}, "input")):
        req = urllib.request.Request(
            f"{gw.url}/v1/embeddings",
            data=json.dumps({"model": "embed", **body}).encode(),
            headers={"content-type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code in (400, 422)
        assert json.loads(info.value.read())["error"]["param"].startswith(field)
    with pytest.raises(openai.NotFoundError) as wrong:
        client.embeddings.create(model="nope", input="x")
    assert "nope" in str(wrong.value)


def test_a_tier_of_another_dimension_is_a_config_error(stack: Stack) -> None:
    nowhere = {"url": "http://127.0.0.1:9"}
    config = embed_config(stack, nowhere, nowhere, small_dim=4)
    path = stack.tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run(
        [PY, "-m", "failwell", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode != 0
    assert "routes.embed.tiers" in check.stdout + check.stderr
    assert "dimension" in check.stdout + check.stderr
