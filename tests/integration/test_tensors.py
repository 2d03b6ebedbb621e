"""Tensor routes with real processes: tritonclient (binary and JSON) → the gateway → the demo
model server's image scorer (FP32 [-1, 3, H, W] batches, binary tensor data), which records
the SHA-256 of the bytes it received; killed mid-batch, the batch is answered by tier 2 with
its shape intact."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from tests.integration.conftest import Gateway, ModelServer, Stack, http_json, wait_until


def scorer(stack: Stack) -> ModelServer:
    return ModelServer(stack, "scorer", ["--tensor-model", "--name", "scorer"])


def scorer_backend(server: ModelServer) -> dict[str, Any]:
    """The scorer as a V2 backend: one attempt, a breaker that opens on the first failure."""
    return {
        "protocol": "v2",
        "timeout": "5s",
        "replicas": [server.replica()],
        "retry": {"attempts": 1},
        "breaker": {"failure_threshold": 1, "recovery": "30s"},
    }


def tensor_config(stack: Stack, server: ModelServer, **tensors: Any) -> dict[str, Any]:
    return stack.config(
        backends={
            "scorer": scorer_backend(server),
            "light": {"protocol": "python", "target": "failwell.testing.models:RowSums"},
        },
        routes={
            "images": {
                "tensors": tensors
                or {
                    "inputs": {"image": {"datatype": "FP32", "shape": [-1, 3, -1, -1]}},
                    "outputs": {"score": {"datatype": "FP32", "shape": [-1, 1]}},
                },
                "max_body": "8MiB",
                "deadline": "8s",
                "tiers": [
                    {"name": "primary", "backend": "scorer"},
                    {"name": "fallback", "backend": "light", "reserve": "2s"},
                    {"name": "static", "value": {"score": [0.0]}},
                ],
            }
        },
    )


def infer(gw: Gateway, x: np.ndarray[Any, Any], binary: bool) -> triton.InferResult:
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}", network_timeout=30)
    try:
        tensor = triton.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        asked = triton.InferRequestedOutput("score", binary_data=binary)
        return client.infer("images", [tensor], outputs=[asked])
    finally:
        client.close()


@pytest.mark.parametrize(
    "shape, binary",
    [((4, 3, 64, 64), True), ((4, 3, 64, 64), False), ((4, 3, 299, 299), True)],
    ids=["binary", "json", "binary-4.3MB"],
)
def test_tritonclient_batches_reach_the_upstream_byte_for_byte(
    stack: Stack, shape: tuple[int, ...], binary: bool
) -> None:
    server = scorer(stack)
    gw = stack.gateway(tensor_config(stack, server))
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)

    result = infer(gw, x, binary)
    score = result.as_numpy("score")
    assert score is not None and score.dtype == np.float32 and score.shape == (shape[0], 1)
    assert np.allclose(score[:, 0], x.reshape(shape[0], -1).mean(axis=1), atol=1e-5)
    assert result.get_response()["parameters"]["failwell_tier"] == "primary"

    seen = http_json(f"{server.url}/_control")["model"]
    assert seen["received"]["image"] == hashlib.sha256(x.tobytes()).hexdigest()
    assert seen["shapes"]["image"] == list(shape) and seen["datatypes"]["image"] == "FP32"


def test_an_upstream_killed_mid_batch_leaves_the_batch_to_tier_two(stack: Stack) -> None:
    server = scorer(stack)
    gw = stack.gateway(tensor_config(stack, server))
    x = np.random.default_rng(2).normal(size=(4, 3, 32, 32)).astype(np.float32)
    server.control("hang")
    got: dict[str, Any] = {}

    def call() -> None:
        try:
            got["result"] = infer(gw, x, True)
        except Exception as exc:  # reported below
            got["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    assert wait_until(lambda: server.requests() >= 1, timeout=10)  # the batch is upstream
    server.kill()
    caller.join(timeout=20)
    assert not caller.is_alive() and "error" not in got, got
    result = got["result"]
    score = result.as_numpy("score")
    assert result.get_response()["parameters"]["failwell_tier"] == "fallback"
    assert score is not None and score.dtype == np.float32 and score.shape == (4, 1)
    assert np.allclose(score[:, 0], x.reshape(4, -1).sum(axis=1), rtol=1e-4)


def test_a_bad_batch_is_a_400_naming_the_tensor_and_leaves_the_breaker_closed(
    stack: Stack,
) -> None:
    server = scorer(stack)
    gw = stack.gateway(tensor_config(stack, server))
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}")
    try:
        tensor = triton.InferInput("image", [2, 4, 8, 8], "FP32")  # 4 channels, not 3
        tensor.set_data_from_numpy(np.zeros((2, 4, 8, 8), np.float32))
        with pytest.raises(triton.InferenceServerException) as bad:
            client.infer("images", [tensor])
        assert "dimension 1 is 4, expected 3" in str(bad.value)
        assert "'image'" in str(bad.value)
    finally:
        client.close()
    ok = infer(gw, np.ones((1, 3, 8, 8), np.float32), True)  # tier 1 still answers
    assert ok.get_response()["parameters"]["failwell_tier"] == "primary"
    assert server.requests() == 1
