"""Tensor routes in process: batches keep their shape and datatype through every tier kind,
bad tensors are 4xx naming the tensor and dimension (and never reach a tier), and each client
gets the answer in the form it asked for. Requests are built by tritonclient itself."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
import pytest
import tritonclient.http as triton

from failwell.config import parse_config
from failwell.gateway.core import Gateway, build
from failwell.protocols.tensor import Tensors
from failwell.resilience.breaker import BreakerState
from failwell.testing.asgi import Response, asgi_call

IMAGE = {"datatype": "FP32", "shape": [-1, 3, 4, 4]}
SCORE = {"datatype": "FP32", "shape": [-1, 1]}
TENSORS = {"inputs": {"x": IMAGE}, "outputs": {"score": SCORE}}


def config(tiers: list[dict[str, Any]], **route: Any) -> dict[str, Any]:
    return {
        "gateway": {"cache": {"path": ":memory:"}},
        "control": {"flags_path": ":memory:"},
        "backends": {
            "m": {"protocol": "python", "target": "failwell.testing.models:RowSums"},
            "broken": {
                "protocol": "python",
                "target": "failwell.testing.models:RowSums",
                "args": {"fail": True},
                "breaker": {"failure_threshold": 1},
            },
        },
        "routes": {"img": {"tensors": TENSORS, "tiers": tiers, **route}},
    }


def run(cfg: dict[str, Any], body: Callable[[Gateway], Awaitable[None]]) -> None:
    async def main() -> None:
        async with build(parse_config(cfg)) as gw:
            await body(gw)

    asyncio.run(main())


def batch(rows: int = 2, dtype: Any = np.float32) -> np.ndarray[Any, Any]:
    return np.arange(rows * 48, dtype=dtype).reshape(rows, 3, 4, 4) / 7


def triton_body(
    inputs: dict[str, np.ndarray[Any, Any]], binary: bool, datatype: str = "FP32"
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    tensors = []
    for name, array in inputs.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    out = triton.InferRequestedOutput("score", binary_data=binary)
    body, length = triton.InferenceServerClient.generate_request_body(tensors, outputs=[out])
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"inference-header-content-length", str(length).encode()))
    return body, headers


def scores(response: Response) -> np.ndarray[Any, Any]:
    assert response.status == 200, response.body
    length = response.headers.get(b"inference-header-content-length")
    result = triton.InferenceServerClient.parse_response_body(
        response.body, header_length=int(length) if length else None
    )
    out: np.ndarray[Any, Any] | None = result.as_numpy("score")
    assert out is not None
    return out


async def infer(gw: Gateway, body: bytes, headers: list[tuple[bytes, bytes]]) -> Response:
    return await asgi_call(gw.app(), "POST", "/v2/models/img/infer", headers, body)


@pytest.mark.parametrize("binary", [True, False])
def test_a_batch_keeps_its_shape_and_datatype_through_the_model(binary: bool) -> None:
    x = batch(4)

    async def body(gw: Gateway) -> None:
        response = await infer(gw, *triton_body({"x": x}, binary))
        out = scores(response)
        assert out.dtype == np.float32 and out.shape == (4, 1)
        assert np.allclose(out[:, 0], x.reshape(4, -1).sum(axis=1))
        assert response.headers[b"x-failwell-tier"] == b"model"
        # binary in, binary out; JSON in, JSON out
        assert (b"inference-header-content-length" in response.headers) is binary

    run(config([{"name": "model", "backend": "m"}]), body)


def test_rules_answer_per_row_and_static_repeats_one_row_in_the_declared_datatype() -> None:
    tiers = [
        {"name": "model", "backend": "broken"},
        {"name": "rules", "rules": "failwell.testing.models:row_count_rule"},
    ]
    x = batch(3)

    async def body(gw: Gateway) -> None:
        response = await infer(gw, *triton_body({"x": x}, True))
        out = scores(response)
        assert response.headers[b"x-failwell-tier"] == b"rules"
        assert out.dtype == np.float32 and out.tolist() == [[48.0]] * 3

    run(config(tiers), body)

    async def static(gw: Gateway) -> None:
        response = await infer(gw, *triton_body({"x": x}, False))
        assert response.headers[b"x-failwell-tier"] == b"static"
        out = scores(response)
        assert out.dtype == np.float32 and out.tolist() == [[0.5]] * 3

    run(config([tiers[0], {"name": "static", "value": {"score": [0.5]}}]), static)


def test_a_rules_answer_with_the_wrong_row_count_falls_through() -> None:
    tiers: list[dict[str, Any]] = [
        {"name": "rules", "rules": "failwell.testing.models:constant_rule"},  # no per-row answer
        {"name": "static", "value": {"score": [1]}},
    ]

    async def body(gw: Gateway) -> None:
        answer = await gw.predict("img", {"x": batch(2)})
        assert answer.tier == "static"
        assert answer.failures[0].kind == "bad_shape"
        assert answer.outputs["score"].shape == (2, 1)

    run(config(tiers), body)


def test_the_cache_tier_is_keyed_on_the_tensor_bytes() -> None:
    cfg = config(
        [
            {"name": "model", "backend": "m"},
            {"name": "cache"},
            {"name": "static", "value": {"score": [-1]}},
        ]
    )

    async def body(gw: Gateway) -> None:
        x = batch(2)
        first = await gw.predict("img", {"x": x})
        assert first.tier == "model"
        gw.faults.flags.set("tier:img/model", False)
        again = await gw.predict("img", {"x": x.copy()})
        assert again.tier == "cache"
        assert again.outputs["score"].array().tolist() == first.outputs["score"].array().tolist()
        other = await gw.predict("img", {"x": x + 1})
        assert other.tier == "static"

    run(cfg, body)


def test_the_python_api_and_v1_predict_take_arrays_and_nested_lists() -> None:
    async def body(gw: Gateway) -> None:
        answer = await gw.predict("img", {"x": batch(2)})
        assert isinstance(answer.outputs, Tensors)
        assert answer.outputs["score"].datatype == "FP32"
        payload = msgspec.json.encode({"inputs": {"x": batch(2).tolist()}})
        response = await asgi_call(gw.app(), "POST", "/v1/predict/img", [], payload)
        assert response.status == 200, response.body
        assert np.asarray(msgspec.json.decode(response.body)["outputs"]["score"]).shape == (2, 1)

    run(config([{"name": "model", "backend": "m"}]), body)


BAD = [
    # (what, inputs, datatype, status, words in the message)
    ("rank", {"x": np.zeros((2, 3, 4), np.float32)}, "FP32", 422, ["'x'", "rank 3", "4"]),
    ("fixed dim", {"x": np.zeros((2, 3, 4, 5), np.float32)}, "FP32", 422, ["dimension 3", "5"]),
    ("datatype", {"x": np.zeros((2, 3, 4, 4), np.float64)}, "FP64", 422, ["FP64", "FP32"]),
    ("unknown", {"x": batch(1), "y": batch(1)}, "FP32", 422, ["'y'", "not an input"]),
    ("missing", {}, "FP32", 422, ["'x'", "missing"]),
]


@pytest.mark.parametrize("what, inputs, datatype, status, words", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("binary", [True, False])
def test_bad_tensors_are_4xx_naming_the_tensor_and_never_reach_a_tier(
    what: str,
    inputs: dict[str, Any],
    datatype: str,
    status: int,
    words: list[str],
    binary: bool,
) -> None:
    async def body(gw: Gateway) -> None:
        if inputs:
            payload, headers = triton_body(inputs, binary, datatype)
        else:
            payload, headers = msgspec.json.encode({"inputs": []}), []
        response = await infer(gw, payload, headers)
        assert response.status == status, response.body
        message = msgspec.json.decode(response.body)["error"]
        assert all(w in message for w in words), message
        replica = gw.pools["broken"].replicas[0]
        assert replica.breaker.state is BreakerState.CLOSED

    run(config([{"name": "model", "backend": "broken"}]), body)


def test_binary_data_that_does_not_fit_the_shape_is_a_400_naming_the_tensor() -> None:
    header = msgspec.json.encode(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 3, 4, 4],
                    "parameters": {"binary_data_size": 40},
                }
            ]
        }
    )
    headers = [(b"inference-header-content-length", str(len(header)).encode())]

    async def body(gw: Gateway) -> None:
        response = await infer(gw, header + bytes(40), headers)
        assert response.status == 400
        message = msgspec.json.decode(response.body)["error"]
        assert "'x'" in message and "40 bytes" in message and "192" in message

    run(config([{"name": "model", "backend": "m"}]), body)


def test_bad_bytes_framing_is_a_400() -> None:
    cfg = config([{"name": "static", "value": {"score": [0]}}])
    cfg["routes"]["img"]["tensors"] = {"inputs": {"t": {"datatype": "BYTES", "shape": [-1]}}}
    data = struct.pack("<I", 3) + b"ab"  # says 3 bytes, has 2
    header = msgspec.json.encode(
        {
            "inputs": [
                {
                    "name": "t",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    )
    headers = [(b"inference-header-content-length", str(len(header)).encode())]

    async def body(gw: Gateway) -> None:
        response = await infer(gw, header + data, headers)
        assert response.status == 400
        assert "'t'" in msgspec.json.decode(response.body)["error"]

    run(cfg, body)


def test_inputs_sharing_the_batch_dimension_must_agree() -> None:
    cfg = config([{"name": "model", "backend": "m"}])
    cfg["routes"]["img"]["tensors"] = {
        "inputs": {"x": IMAGE, "ids": {"datatype": "INT64", "shape": [-1]}}
    }

    async def body(gw: Gateway) -> None:
        response = await asgi_call(
            gw.app(),
            "POST",
            "/v2/models/img/infer",
            [],
            msgspec.json.encode(
                {
                    "inputs": [
                        {
                            "name": "x",
                            "datatype": "FP32",
                            "shape": [2, 3, 4, 4],
                            "data": [0.0] * 96,
                        },
                        {"name": "ids", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]},
                    ]
                }
            ),
        )
        assert response.status == 422
        assert "dimension 0" in msgspec.json.decode(response.body)["error"]

    run(cfg, body)


def test_metadata_publishes_the_route_tensors() -> None:
    async def body(gw: Gateway) -> None:
        response = await asgi_call(gw.app(), "GET", "/v2/models/img", [], b"")
        meta = msgspec.json.decode(response.body)
        assert meta["inputs"] == [{"name": "x", **IMAGE}]
        assert meta["outputs"] == [{"name": "score", **SCORE}]

    run(config([{"name": "model", "backend": "m"}]), body)


def test_a_route_body_limit_replaces_the_gateway_one() -> None:
    cfg = config([{"name": "model", "backend": "m"}], max_body="2KiB")
    x = batch(16)  # 3 KiB of FP32

    async def body(gw: Gateway) -> None:
        response = await infer(gw, *triton_body({"x": x}, True))
        assert response.status == 413

    run(cfg, body)


@pytest.mark.parametrize("policy", ["full", "hashed"])
def test_the_inference_log_records_tensor_requests(tmp_path: Any, policy: str) -> None:
    cfg = config([{"name": "model", "backend": "m"}], log_input=policy)
    cfg["log"] = {"enabled": True, "path": str(tmp_path / "log")}
    x = batch(2)

    async def body(gw: Gateway) -> None:
        response = await infer(gw, *triton_body({"x": x}, True))
        assert response.status == 200

    run(cfg, body)
    text = b"".join(p.read_bytes() for p in (tmp_path / "log").glob("inference/*"))
    assert b'"route":"img"' in text and b'"tier":"model"' in text
    assert (b'"input_sha256"' in text) is (policy == "hashed")
    assert (b'"datatype":"FP32"' in text) is True  # the outputs, and with full the inputs


def test_a_model_answer_passes_as_the_model_shaped_it() -> None:
    cfg = config([{"name": "model", "backend": "m"}, {"name": "static", "value": {"score": [0]}}])
    wide = {"datatype": "FP64", "shape": [-1, 5]}  # not what RowSums answers
    cfg["routes"]["img"]["tensors"] = {"inputs": {"x": IMAGE}, "outputs": {"score": wide}}

    async def body(gw: Gateway) -> None:
        answer = await gw.predict("img", {"x": batch(2)})
        assert answer.tier == "model"
        assert (answer.outputs["score"].datatype, answer.outputs["score"].shape) == ("FP32", (2, 1))

    run(cfg, body)
