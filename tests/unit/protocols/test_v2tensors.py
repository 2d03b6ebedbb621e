"""The tensor codec: whatever tritonclient sends (any datatype and shape, binary or JSON) is
read back exactly; binary data goes upstream as the very bytes the client sent; and Hypothesis
fuzzes the binary framing: a broken body is a 400, never anything else."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import msgspec
import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from failwell.config import parse_config
from failwell.config.tensors import Datatype, TensorWire
from failwell.errors import InvalidInput, UpstreamMalformed
from failwell.gateway.core import build
from failwell.protocols.tensor import Tensor, Tensors, json_tensor, restore, tensor_of
from failwell.protocols.v2tensors import (
    decode_tensor_request,
    decode_tensor_response,
    encode_tensor_response,
    encode_tensor_upstream,
)
from failwell.testing.asgi import asgi_call

FUZZED: Counter[str] = Counter()
NUMERIC = [d for d in Datatype if d is not Datatype.BYTES]
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4)


@st.composite
def arrays(draw: st.DrawFn) -> tuple[str, np.ndarray[Any, Any]]:
    datatype = draw(st.sampled_from([*NUMERIC, Datatype.BYTES]))
    shape = draw(shapes)
    if datatype is Datatype.BYTES:
        flat = draw(st.lists(st.binary(max_size=6), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))  # fmt: skip
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return datatype.value, array.reshape(shape)
    dtype = np.dtype(datatype.numpy)
    elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    return datatype.value, draw(hnp.arrays(dtype, shape, elements=elements))


def triton_request(
    datatype: str, array: np.ndarray[Any, Any], binary: bool
) -> tuple[bytes, int | None]:
    tensor = triton.InferInput("t", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    body, length = triton.InferenceServerClient.generate_request_body([tensor])
    return body, length


@settings(max_examples=200, deadline=None)
@given(arrays(), st.booleans())
def test_what_tritonclient_sends_is_read_back_exactly(
    sent: tuple[str, np.ndarray[Any, Any]], binary: bool
) -> None:
    datatype, array = sent
    if datatype == "BYTES" and not binary:  # JSON carries text
        array = np.vectorize(lambda b: b.hex().encode(), otypes=[object])(array)
    body, length = triton_request(datatype, array, binary)
    tensor = decode_tensor_request(body, length).inputs["t"]
    assert (tensor.datatype, tensor.shape, tensor.binary) == (datatype, array.shape, binary)
    got = tensor.array()
    if datatype == "BYTES":
        assert got.tolist() == array.tolist()
    else:
        assert got.dtype == np.dtype(Datatype(datatype).numpy)
        assert np.array_equal(got, array)
    if binary and array.size:  # the client's bytes, not a copy
        assert isinstance(tensor.data, memoryview) and tensor.data.obj is body


@settings(max_examples=150, deadline=None)
@given(st.lists(arrays(), min_size=1, max_size=3), st.data())
def test_a_body_read_in_parts_gives_the_same_tensors_without_joining_them(
    sent: list[tuple[str, np.ndarray[Any, Any]]], data: st.DataObject
) -> None:
    tensors = []
    for i, (datatype, array) in enumerate(sent):
        tensor = triton.InferInput(f"t{i}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        tensors.append(tensor)
    body, length = triton.InferenceServerClient.generate_request_body(tensors)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(body) - 1, 1)), max_size=6)))
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
    whole, split = decode_tensor_request(body, length), decode_tensor_request(parts, length)
    assert list(split.inputs) == list(whole.inputs)
    up_parts, up_len = encode_tensor_upstream(split.inputs, "r", TensorWire.MIRROR)
    up_whole, whole_len = encode_tensor_upstream(whole.inputs, "r", TensorWire.MIRROR)
    assert up_len == whole_len and b"".join(up_parts) == b"".join(up_whole)
    for name, tensor in split.inputs.items():
        assert b"".join(tensor.parts()) == bytes(whole.inputs[name].data)
        assert tensor.nbytes == len(whole.inputs[name].data)
        assert bytes(tensor.data) == bytes(whole.inputs[name].data)  # joined on first use


def test_binary_tensors_go_upstream_as_the_same_bytes() -> None:
    x = np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32)
    body, length = triton_request("FP32", x, True)
    inputs = decode_tensor_request(body, length).inputs
    parts, up_length = encode_tensor_upstream(inputs, "r1", TensorWire.MIRROR)
    assert up_length is not None and parts[1] is inputs["t"].data  # not copied
    upstream = b"".join(parts)
    head = msgspec.json.decode(upstream[:up_length])
    assert head["inputs"] == [
        {
            "name": "t",
            "datatype": "FP32",
            "shape": [4, 3, 8, 8],
            "parameters": {"binary_data_size": x.nbytes},
        }
    ]
    assert head["parameters"] == {"binary_data_output": True} and head["id"] == "r1"
    assert upstream[up_length:] == x.tobytes()
    # a server without the binary extension gets JSON, still FP32 and still [4, 3, 8, 8]
    as_json, none = encode_tensor_upstream(inputs, None, TensorWire.JSON)
    tensor = msgspec.json.decode(b"".join(as_json))["inputs"][0]
    assert none is None and (tensor["datatype"], tensor["shape"]) == ("FP32", [4, 3, 8, 8])
    assert np.array_equal(np.asarray(tensor["data"], dtype=np.float32), x.ravel())


def test_json_tensors_go_upstream_as_json_unless_the_backend_wants_binary() -> None:
    body, _ = triton_request("INT64", np.arange(6, dtype=np.int64).reshape(2, 3), False)
    inputs = decode_tensor_request(body, None).inputs
    mirrored, length = encode_tensor_upstream(inputs, None, TensorWire.MIRROR)
    assert length is None and len(mirrored) == 1
    assert msgspec.json.decode(mirrored[0])["inputs"][0]["data"] == [0, 1, 2, 3, 4, 5]
    binary, length = encode_tensor_upstream(inputs, None, TensorWire.BINARY)
    assert length is not None and binary[1] == np.arange(6, dtype="<i8").tobytes()


@pytest.mark.parametrize("binary", [True, False])
def test_answers_come_back_in_the_form_asked_for(binary: bool) -> None:
    score = np.array([[0.25], [0.5]], dtype=np.float32)
    outputs = Tensors(score=tensor_of("score", score))
    x = triton.InferInput("x", [2], "FP32")
    x.set_data_from_numpy(np.zeros(2, np.float32))
    asked = triton.InferRequestedOutput("score", binary_data=binary)
    body, length = triton.InferenceServerClient.generate_request_body([x], outputs=[asked])
    request = decode_tensor_request(body, length)
    payload, out_length = encode_tensor_response("img", "v1", outputs, request, {"k": "v"})
    assert (out_length is not None) is binary
    result = triton.InferenceServerClient.parse_response_body(payload, header_length=out_length)
    got = result.as_numpy("score")
    assert got is not None and got.dtype == np.float32 and np.array_equal(got, score)
    # and the gateway reads such an answer from an upstream
    tensors, version = decode_tensor_response(payload, out_length)
    assert version == "v1" and np.array_equal(tensors["score"].array(), score)


def test_a_broken_upstream_answer_is_upstream_malformed() -> None:
    with pytest.raises(UpstreamMalformed):
        decode_tensor_response(b'{"outputs": [{"name": "s", "datatype": "FP32", "shape": [2]', None)


@st.composite
def broken_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A valid binary request, then cut, padded, overwritten or given a wrong length."""
    datatype, array = draw(arrays())
    body, length = triton_request(datatype, array, True)
    how = draw(st.sampled_from(["cut", "pad", "flip", "length", "size", "none"]))
    FUZZED[how] += 1
    if how == "cut" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "pad":
        body += draw(st.binary(min_size=1, max_size=8))
    elif how == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    elif how == "length":
        length = draw(st.integers(-2, len(body) + 2))
    elif how == "size":
        header = msgspec.json.decode(body[:length])
        header["inputs"][0]["parameters"]["binary_data_size"] = draw(st.integers(-5, 1 << 40))
        head = msgspec.json.encode(header)
        body, length = head + body[length or 0 :], len(head)
    return body, length


@settings(max_examples=400, deadline=None)
@given(broken_bodies())
def test_fuzzed_binary_framing_is_a_400_or_a_tensor(case: tuple[bytes, int | None]) -> None:
    body, length = case
    try:
        request = decode_tensor_request(body, length)
    except InvalidInput as exc:
        assert exc.status == 400
        return
    for tensor in request.inputs.values():  # what decodes, reads
        tensor.array()


PASSTHROUGH = {
    "gateway": {"cache": {"path": ":memory:"}},
    "control": {"flags_path": ":memory:"},
    "routes": {
        "any": {  # any well-formed tensors; answered by the rules tier per row, then static
            "tensors": {"source": "passthrough"},
            "tiers": [
                {"name": "rules", "rules": "failwell.testing.models:row_count_rule"},
                {"name": "static", "value": {"score": [0.0]}},
            ],
        }
    },
}


def test_the_edge_answers_fuzzed_binary_bodies_without_a_5xx() -> None:
    async def main() -> None:
        async with build(parse_config(PASSTHROUGH)) as gw:
            app = gw.app()

            @settings(max_examples=150, deadline=None)
            @given(broken_bodies())
            def case(body_and_length: tuple[bytes, int | None]) -> None:
                body, length = body_and_length
                headers = [] if length is None else [(b"inference-header-content-length", str(length).encode())]  # fmt: skip
                response = asyncio.run_coroutine_threadsafe(
                    asgi_call(app, "POST", "/v2/models/any/infer", headers, body), loop
                ).result(timeout=30)
                assert response.status < 500, response.body

            loop = asyncio.get_running_loop()
            await asyncio.to_thread(case)

    asyncio.run(main())


def _forms() -> list[Tensor]:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    whole = tensor_of("t", x)
    raw = memoryview(whole.data)
    text = msgspec.Raw(b"[[0, 1, 2], [3, 4, 5]]")
    return [
        whole,  # packed bytes
        Tensor("t", "FP32", (2, 3), None, True, None, None, (raw[:8], raw[8:])),  # parts
        json_tensor("t", "FP32", (2, 3), x.ravel().tolist(), text),  # JSON, parsed
        Tensor("t", "FP32", (2, 3), None, False, text),  # JSON, counted not parsed
    ]


@pytest.mark.parametrize("tensor", _forms(), ids=["bytes", "parts", "values", "text"])
def test_a_tensor_comes_back_from_the_answer_caches_json_whatever_its_form(tensor: Tensor) -> None:
    """The answer cache's SQLite file and the fleet's Redis hold answers as msgspec JSON."""
    back = restore("t", msgspec.json.decode(msgspec.json.encode(tensor)))
    assert (back.datatype, back.shape) == ("FP32", (2, 3))
    assert back.array().tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_bytes_tensor_comes_back_from_the_answer_caches_json() -> None:
    words = tensor_of("w", np.array([b"cat", b""], dtype=object))
    back = restore("w", msgspec.json.decode(msgspec.json.encode(words)))
    assert back.datatype == "BYTES" and back.array().tolist() == [b"cat", b""]
