"""The official clients against failwell's front ends: tritonclient (V2, binary tensors by
default) and openai (chat completions), each through a healthy tier 1 and through a fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import tritonclient.http as triton

from tests.integration.conftest import Gateway, ModelServer, Stack, light_ranker, openai_backend


def predict_config(stack: Stack, ranker: ModelServer, models: Path) -> dict[str, Any]:
    return stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": "500ms",
                "replicas": [ranker.replica()],
                "breaker": {"failure_threshold": 1, "recovery": "30s"},
            },
            "light": light_ranker(models),
        },
        routes={
            "recommend": {
                "input": {"user_id": "str", "country": "str", "category": "str"},
                "deadline": "1s",
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "fallback", "backend": "light"},
                    {"name": "static", "value": {"items": [1, 2, 3]}},
                ],
            }
        },
    )


def triton_infer(gw: Gateway, binary: bool) -> triton.InferResult:
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}")
    inputs = []
    for name, value in (("user_id", "u0042"), ("country", "DE"), ("category", "books")):
        tensor = triton.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value.encode()], dtype=np.object_), binary_data=binary)
        inputs.append(tensor)
    try:
        return client.infer(
            "recommend", inputs, outputs=[triton.InferRequestedOutput("items", binary_data=binary)]
        )
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_through_tier_one_and_fallback(
    stack: Stack, models: Path, binary: bool
) -> None:
    ranker = stack.model_server(model_dir=models, label="r1")
    gw = stack.gateway(predict_config(stack, ranker, models))
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("recommend")
        meta = client.get_model_metadata("recommend")
        assert [i["name"] for i in meta["inputs"]] == ["user_id", "country", "category"]
    finally:
        client.close()

    result = triton_infer(gw, binary)
    items = result.as_numpy("items")
    assert items is not None and items.shape == (10,) and items.dtype == np.int64
    assert result.get_response()["parameters"]["failwell_tier"] == "primary"

    ranker.kill()
    result = triton_infer(gw, binary)
    assert result.get_response()["parameters"]["failwell_tier"] == "fallback"
    assert result.as_numpy("items").shape == (10,)


def test_tritonclient_bad_input_is_a_clear_error(stack: Stack, models: Path) -> None:
    ranker = stack.model_server(model_dir=models, label="r1")
    gw = stack.gateway(predict_config(stack, ranker, models))
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}")
    tensor = triton.InferInput("user_id", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"u1"], dtype=np.object_))
    try:
        with pytest.raises(triton.InferenceServerException) as info:
            client.infer("recommend", [tensor])
    finally:
        client.close()
    assert "country" in str(info.value)


def chat_config(stack: Stack, large: ModelServer, small: ModelServer) -> dict[str, Any]:
    return stack.config(
        backends={
            "large": openai_backend(large, "demo-large", breaker={"failure_threshold": 1}),
            "small": openai_backend(small, "demo-small"),
        },
        routes={
            "chat": {
                "kind": "chat",
                "deadline": "5s",
                "tiers": [
                    {"name": "primary", "backend": "large"},
                    {"name": "fallback", "backend": "small"},
                    {"name": "rules", "rules": "failwell.demo.rules:canned_reply"},
                    {"name": "static", "value": {"content": "unavailable"}},
                ],
            }
        },
    )


def test_openai_client_through_tier_one_and_fallbacks(stack: Stack) -> None:
    large = stack.model_server(chat_model="demo-large", label="large")
    small = stack.model_server(chat_model="demo-small", label="small")
    gw = stack.gateway(chat_config(stack, large, small))
    with openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10
    ) as client:  # closed: its pooled connections are not left to the garbage collector
        messages: Any = [{"role": "user", "content": "What should I read next?"}]

        raw = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
        reply = raw.parse()
        assert raw.headers["x-failwell-tier"] == "primary"
        assert reply.choices[0].message.content and "large" in reply.choices[0].message.content
        assert [m.id for m in client.models.list().data] == ["chat"]

        large.control("error", status=503)
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
        assert raw.headers["x-failwell-tier"] == "fallback"
        assert "small" in (raw.parse().choices[0].message.content or "")

        small.kill()
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
        assert raw.headers["x-failwell-tier"] == "rules"
        assert raw.headers["x-failwell-quality"] == "generic"


def test_openai_client_sees_clear_errors(stack: Stack) -> None:
    large = stack.model_server(chat_model="demo-large", label="large")
    gw = stack.gateway(chat_config(stack, large, large))
    with openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "hi"}]
            )
        assert "no route named 'nope'" in str(missing.value)
        robot: Any = [{"role": "robot", "content": "hi"}]  # not a role the client types
        with pytest.raises(openai.UnprocessableEntityError) as bad:
            client.chat.completions.create(model="chat", messages=robot)
        assert "role" in str(bad.value)
        with pytest.raises(openai.BadRequestError) as options:
            client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "hi"}],
                stream_options={"include_usage": True},
            )
        assert "stream_options" in str(options.value)
