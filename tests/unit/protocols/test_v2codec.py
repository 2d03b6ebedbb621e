"""The v2 codec against tritonclient's own wire format, plus the malformed cases."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import msgspec
import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st

from failwell.errors import InvalidInput, UpstreamMalformed
from failwell.protocols.v2binary import tensor_of
from failwell.protocols.v2codec import (
    V2Request,
    decode_infer_request,
    decode_infer_response,
    decode_upstream_response,
    encode_infer_response,
    encode_upstream_request,
)

SCHEMA = {
    "user_id": "str",
    "age": "int",
    "score": "float",
    "active": "bool",
    "tags": "list[str]",
    "ids": "list[int]",
    "vec": "list[float]",
}
VALUES: dict[str, Any] = {
    "user_id": "ünï-42",
    "age": 31,
    "score": 0.5,
    "active": True,
    "tags": ["a", "", "ß"],
    "ids": [1, -2, 2**40],
    "vec": [0.25, -1.5],
}
ARRAYS = {
    "user_id": np.array(["ünï-42".encode()], dtype=np.object_),
    "age": np.array([31], dtype=np.int64),
    "score": np.array([[0.5]], dtype=np.float32),
    "active": np.array([True]),
    "tags": np.array(["a", "", "ß"], dtype=np.object_),
    "ids": np.array([1, -2, 2**40], dtype=np.int64),
    "vec": np.array([0.25, -1.5], dtype=np.float32),
}
DATATYPES = {
    "user_id": "BYTES",
    "age": "INT64",
    "score": "FP32",
    "active": "BOOL",
    "tags": "BYTES",
    "ids": "INT64",
    "vec": "FP32",
}


def triton_inputs(binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name, array in ARRAYS.items():
        tensor = triton.InferInput(name, list(array.shape), DATATYPES[name])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def triton_body(
    inputs: list[triton.InferInput], outputs: list[triton.InferRequestedOutput] | None = None
) -> tuple[bytes, int | None]:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return body, json_size


def raw_request(header: Any, tail: bytes = b"") -> tuple[bytes, int | None]:
    head = msgspec.json.encode(header)
    return head + tail, len(head) if tail else None


def tensor(
    name: str, datatype: str, shape: list[int], data: Any = None, size: int | None = None
) -> Any:
    out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if data is not None:
        out["data"] = data
    if size is not None:
        out["parameters"] = {"binary_data_size": size}
    return out


def json_tensors(**overrides: Any) -> list[Any]:
    """Every SCHEMA field as a JSON tensor, with some replaced (None drops one)."""
    tensors = {
        name: tensor(name, "BYTES" if "str" in t else DATATYPES[name].replace("FP32", "FP64"),
                     [len(v)] if isinstance(v, list) else [1], v if isinstance(v, list) else [v])
        for (name, t), v in zip(SCHEMA.items(), VALUES.values(), strict=True)
    }  # fmt: skip
    tensors.update(overrides)
    return [t for t in tensors.values() if t is not None]


def request(binary: bool = True, requested: dict[str, bool] | None = None) -> V2Request:
    names = list(requested) if requested is not None else None
    return V2Request({}, None, binary, requested or {}, names)


def bytes_elements(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


# --- requests from tritonclient --------------------------------------------------------------


def test_json_inputs_from_tritonclient() -> None:
    body, json_size = triton_body(triton_inputs(binary=False))
    assert json_size is None
    decoded = decode_infer_request(body, json_size, SCHEMA)
    assert decoded.inputs == VALUES
    assert decoded.request_id is None
    # no outputs named: tritonclient asks for every output in binary
    assert decoded.binary_output is True
    assert decoded.requested is None


def test_binary_inputs_from_tritonclient() -> None:
    body, json_size = triton_body(triton_inputs(binary=True))
    assert json_size is not None and json_size < len(body)
    assert decode_infer_request(body, json_size, SCHEMA).inputs == VALUES


def test_mixed_json_and_binary_inputs() -> None:
    inputs = triton_inputs(binary=True)
    inputs[1].set_data_from_numpy(ARRAYS["age"], binary_data=False)
    inputs[4].set_data_from_numpy(ARRAYS["tags"], binary_data=False)
    body, json_size = triton_body(inputs)
    assert decode_infer_request(body, json_size, SCHEMA).inputs == VALUES


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize(
    ("field", "dtype", "expected"),
    [
        ("ids", np.int8, [1, -2, 3]),
        ("ids", np.int16, [1, -2, 3]),
        ("ids", np.int32, [1, -2, 3]),
        ("ids", np.uint8, [1, 2, 3]),
        ("ids", np.uint16, [1, 2, 3]),
        ("ids", np.uint32, [1, 2, 3]),
        ("ids", np.uint64, [1, 2, 2**64 - 1]),
        ("vec", np.float16, [0.5, -2.0, 3.0]),
        ("vec", np.float64, [0.1, -2.0, 3.0]),
        ("vec", np.int32, [1.0, -2.0, 3.0]),
    ],
)
def test_every_datatype_a_field_takes(
    field: str, dtype: Any, expected: list[Any], binary: bool
) -> None:
    array = np.array(expected, dtype=dtype)
    inputs = [i for i in triton_inputs(binary) if i.name() != field]
    extra = triton.InferInput(field, [3], triton.np_to_triton_dtype(array.dtype))
    inputs.append(extra.set_data_from_numpy(array, binary_data=binary))
    decoded = decode_infer_request(*triton_body(inputs), SCHEMA).inputs[field]
    assert decoded == expected
    assert all(type(v) is type(expected[0]) for v in decoded)


def test_bf16_binary_input() -> None:
    tail = b"\xc0\x3f" + b"\x20\xc1"  # 1.5 and -10.0 as bfloat16
    header = {"inputs": json_tensors(vec=tensor("vec", "BF16", [2], size=4))}
    assert decode_infer_request(*raw_request(header, tail), SCHEMA).inputs["vec"] == [1.5, -10.0]


def test_nested_json_data_is_flattened_row_major() -> None:
    header = {"inputs": json_tensors(ids=tensor("ids", "INT32", [2, 2], [[1, 2], [3, 4]]),
                                     age=tensor("age", "INT64", [1, 1], [[5]]))}  # fmt: skip
    inputs = decode_infer_request(*raw_request(header), SCHEMA).inputs
    assert inputs["ids"] == [1, 2, 3, 4]
    assert inputs["age"] == 5


def test_bare_element_data_counts_as_one_element() -> None:
    header = {"inputs": json_tensors(user_id=tensor("user_id", "BYTES", [1], "u1"))}
    assert decode_infer_request(*raw_request(header), SCHEMA).inputs["user_id"] == "u1"


def test_request_id_and_requested_outputs() -> None:
    outputs = [
        triton.InferRequestedOutput("b", binary_data=False),
        triton.InferRequestedOutput("a"),
    ]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        triton_inputs(binary=True), outputs=outputs, request_id="req-7"
    )
    decoded = decode_infer_request(body, json_size, SCHEMA)
    assert decoded.request_id == "req-7"
    assert decoded.binary_output is False
    assert decoded.binary_outputs == {"b": False, "a": True}
    assert decoded.requested == ["b", "a"]


def test_per_output_flag_defaults_to_request_flag() -> None:
    header = {
        "inputs": json_tensors(),
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
    }
    decoded = decode_infer_request(*raw_request(header), SCHEMA)
    assert decoded.binary_outputs == {"a": True, "b": False}


# --- responses read by tritonclient ----------------------------------------------------------

OUTPUTS: dict[str, Any] = {
    "label": "cat",
    "labels": ["cat", "dög", ""],
    "count": 3,
    "counts": [1, 2, -3],
    "prob": 0.75,
    "probs": [0.25, 1],
    "ok": True,
    "flags": [True, False],
    "matrix": [[1.5, 2.0], [3.0, 4.5]],
    "extra": {"why": ["x"]},
}
EXPECTED: dict[str, tuple[str, list[int], list[Any]]] = {
    "label": ("BYTES", [1], ["cat"]),
    "labels": ("BYTES", [3], ["cat", "dög", ""]),
    "count": ("INT64", [1], [3]),
    "counts": ("INT64", [3], [1, 2, -3]),
    "prob": ("FP64", [1], [0.75]),
    "probs": ("FP64", [2], [0.25, 1.0]),
    "ok": ("BOOL", [1], [True]),
    "flags": ("BOOL", [2], [True, False]),
    "matrix": ("FP64", [2, 2], [1.5, 2.0, 3.0, 4.5]),
    "extra": ("BYTES", [1], ['{"why":["x"]}']),
}


def check_with_tritonclient(result: triton.InferResult, names: list[str]) -> None:
    assert [o["name"] for o in result.get_response()["outputs"]] == names
    for name in names:
        datatype, shape, flat = EXPECTED[name]
        output = result.get_output(name)
        assert (output["datatype"], output["shape"]) == (datatype, shape)
        array = result.as_numpy(name)
        assert list(array.shape) == shape
        # tritonclient gives BYTES elements as bytes from binary data, as str from JSON
        assert [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()] == flat


def test_binary_response_read_by_tritonclient() -> None:
    body, json_size = triton_body(triton_inputs(binary=True))
    decoded = decode_infer_request(body, json_size, SCHEMA)
    answer, header_length = encode_infer_response("m", "1", "r1", OUTPUTS, decoded, {"tier": "p"})
    assert header_length is not None
    result = triton.InferResult.from_response_body(answer, header_length=header_length)
    check_with_tritonclient(result, list(OUTPUTS))
    head = result.get_response()
    assert (head["model_name"], head["model_version"], head["id"]) == ("m", "1", "r1")
    assert head["parameters"] == {"tier": "p"}
    assert all("data" not in o for o in head["outputs"])


def test_json_response_read_by_tritonclient() -> None:
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in OUTPUTS]
    decoded = decode_infer_request(*triton_body(triton_inputs(binary=False), outputs), SCHEMA)
    answer, header_length = encode_infer_response("m", None, None, OUTPUTS, decoded, {})
    assert header_length is None
    check_with_tritonclient(triton.InferResult.from_response_body(answer), list(OUTPUTS))
    head = msgspec.json.decode(answer)
    assert list(head) == ["model_name", "parameters", "outputs"]  # no version, no id


def test_requested_outputs_subset_in_requested_order() -> None:
    outputs = [triton.InferRequestedOutput("matrix"), triton.InferRequestedOutput("label", False)]
    decoded = decode_infer_request(*triton_body(triton_inputs(binary=True), outputs), SCHEMA)
    answer, header_length = encode_infer_response("m", "1", None, OUTPUTS, decoded, {})
    assert header_length is not None
    result = triton.InferResult.from_response_body(answer, header_length=header_length)
    check_with_tritonclient(result, ["matrix", "label"])
    assert result.get_output("label")["data"] == ["cat"]
    assert decode_infer_response(answer, header_length)[0] == {
        "matrix": [1.5, 2.0, 3.0, 4.5],
        "label": "cat",
    }


def test_unknown_requested_output_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_infer_response("m", None, None, OUTPUTS, request(requested={"nope": True}), {})
    assert (caught.value.status, caught.value.field) == (422, "nope")
    assert "'nope'" in caught.value.message


def test_a_bare_value_is_one_output_named_output() -> None:
    answer, _ = encode_infer_response("m", None, None, [0.5, 0.25], request(binary=False), {})
    assert decode_upstream_response(answer) == ({"output": [0.5, 0.25]}, None)


@pytest.mark.parametrize(
    ("value", "datatype", "shape"),
    [
        ("x", "BYTES", [1]),
        ([], "FP64", [0]),
        ([1, 2.5], "FP64", [2]),
        ([[1, 2, 3]], "INT64", [1, 3]),
        ([[[]]], "FP64", [1, 1, 0]),
        ((1, 2), "INT64", [2]),
        (2**63, "BYTES", [1]),
        ([1, True], "BYTES", [1]),
        ([[1], [2, 3]], "BYTES", [1]),
        ([["a"], ["b"]], "BYTES", [1]),
        (None, "BYTES", [1]),
        (np.float32(0.5), "FP64", [1]),
        (np.arange(6).reshape(2, 3), "INT64", [2, 3]),
    ],
)
def test_output_value_mapping(value: Any, datatype: str, shape: list[int]) -> None:
    assert tensor_of(value)[:2] == (datatype, shape)


# --- upstream client side ---------------------------------------------------------------------


def test_upstream_request_is_plain_json_the_gateway_side_reads_back() -> None:
    body = encode_upstream_request(VALUES, SCHEMA, "r9")
    head = msgspec.json.decode(body)
    assert head["id"] == "r9"
    assert [(t["name"], t["datatype"], t["shape"]) for t in head["inputs"]][:3] == [
        ("user_id", "BYTES", [1]),
        ("age", "INT64", [1]),
        ("score", "FP64", [1]),
    ]
    assert decode_infer_request(body, None, SCHEMA).inputs == VALUES


def test_upstream_request_datatype_override() -> None:
    body = encode_upstream_request(
        {**VALUES, "vec": [1, 2]}, SCHEMA, None, datatypes={"vec": "FP32"}
    )
    head = msgspec.json.decode(body)
    assert "id" not in head
    assert head["inputs"][-1] == {
        "name": "vec",
        "datatype": "FP32",
        "shape": [1, 2],
        "data": [1.0, 2.0],
    }
    with pytest.raises(ValueError, match="cannot carry"):
        encode_upstream_request(VALUES, SCHEMA, None, datatypes={"user_id": "INT64"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", True),
        ("age", "3"),
        ("score", None),
        ("tags", "ab"),
        ("ids", [1, 2.0]),
        ("active", 1),
    ],
)
def test_upstream_request_rejects_values_that_do_not_fit(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_upstream_request({**VALUES, field: value}, SCHEMA, None)
    assert caught.value.field == field


def test_upstream_request_missing_input() -> None:
    with pytest.raises(InvalidInput, match="input 'age' is missing"):
        encode_upstream_request({k: v for k, v in VALUES.items() if k != "age"}, SCHEMA, None)


def test_upstream_response_like_triton_sends() -> None:
    body = msgspec.json.encode({
        "model_name": "clf", "model_version": "3", "id": "x",
        "outputs": [
            tensor("label", "BYTES", [1], ["spam"]),
            tensor("probs", "FP32", [1, 2], [[0.25, 0.75]]),
            tensor("top", "INT32", [2], [4, 1]),
            tensor("score", "FP64", [1], [1]),
            tensor("ok", "BOOL", [], [True]),
        ],
    })  # fmt: skip
    outputs, version = decode_upstream_response(body)
    assert version == "3"
    assert outputs == {
        "label": "spam",
        "probs": [0.25, 0.75],
        "top": [4, 1],
        "score": 1.0,
        "ok": True,
    }
    assert type(outputs["score"]) is float


def test_binary_response_decodes_from_tritonclient_style_body() -> None:
    head = msgspec.json.encode(
        {"outputs": [tensor("t", "BYTES", [2], size=13), tensor("f", "FP32", [1], size=4)]}
    )
    tail = bytes_elements(b"ab", b"cde") + struct.pack("<f", 0.5)
    assert decode_infer_response(head + tail, len(head)) == ({"t": ["ab", "cde"], "f": 0.5}, None)


UPSTREAM_MALFORMED = [
    b"",
    b"not json",
    b"[]",
    b'{"model_name": "m"}',
    b'{"outputs": [{"name": "a", "datatype": "FP8", "shape": [1], "data": [1]}]}',
    b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}',
    b'{"outputs": [{"name": "a", "datatype": "INT32", "shape": [1], "data": ["x"]}]}',
    b'{"outputs": [{"name": "a", "datatype": "INT8", "shape": [1], "data": [128]}]}',
    b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [null]}]}',
    b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [1]}]}',
    b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}',
    b'{"outputs": [{"name": "a", "datatype": "BOOL", "shape": [1], "data": [1]}, '
    b'{"name": "a", "datatype": "BOOL", "shape": [1], "data": [true]}]}',
    b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [-1], "data": []}]}',
    b'{"model_version": 3, "outputs": []}',
]


@pytest.mark.parametrize("body", UPSTREAM_MALFORMED)
def test_malformed_upstream_response(body: bytes) -> None:
    with pytest.raises(UpstreamMalformed):
        decode_upstream_response(body)


def test_upstream_bytes_that_are_not_utf8() -> None:
    head = msgspec.json.encode({"outputs": [tensor("t", "BYTES", [1], size=5)]})
    with pytest.raises(UpstreamMalformed, match="utf-8"):
        decode_infer_response(head + bytes_elements(b"\xff"), len(head))


# --- malformed requests ----------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes, int | None, int, str | None]] = [
    # (case, body, header_length, status, field)
    ("not json", b"{nope", None, 400, None),
    ("not an object", b"[1, 2]", None, 400, None),
    ("no inputs", b'{"id": "x"}', None, 400, None),
    ("id not a string", msgspec.json.encode({"id": 3, "inputs": json_tensors()}), None, 400, None),
    ("header length past body", b"{}", 3, 400, None),
    ("negative header length", b"{}", -1, 400, None),
    ("deep nesting", b'{"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1], "data": '
     + b"[" * 100_000 + b"]" * 100_000 + b"}]}", None, 400, None),
    ("binary_data_output not bool",
     msgspec.json.encode({"inputs": json_tensors(), "parameters": {"binary_data_output": "yes"}}),
     None, 400, None),
    ("output requested twice",
     msgspec.json.encode({"inputs": json_tensors(), "outputs": [{"name": "a"}, {"name": "a"}]}),
     None, 400, "a"),
    ("classification output",
     msgspec.json.encode({"inputs": json_tensors(),
                          "outputs": [{"name": "a", "parameters": {"classification": 2}}]}),
     None, 400, "a"),
]  # fmt: skip


def malformed_tensor(
    field: str, bad: Any, tail: bytes = b"", status: int = 400, named: bool = True
) -> Any:
    body, length = raw_request({"inputs": json_tensors(**{field: bad})}, tail)
    return pytest.param(
        body, length, status, field if named else None, id=f"{field}:{bad}:{tail!r}"[:60]
    )


@pytest.mark.parametrize(
    ("body", "header_length", "status", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED]
    + [
        malformed_tensor("age", tensor("age", "FP8", [1], [1])),
        malformed_tensor("ids", tensor("ids", "INT64", [2], [1, 2, 3])),
        malformed_tensor("ids", tensor("ids", "INT64", [2, 2], [[1, 2], [3]])),
        malformed_tensor("ids", tensor("ids", "INT64", [-1], [1])),
        malformed_tensor("ids", tensor("ids", "INT64", [2] * 100_000, [1])),  # 2**100000 elements
        malformed_tensor("ids", tensor("ids", "INT64", [1], ["1"])),
        malformed_tensor("ids", tensor("ids", "INT64", [1], [1.5])),
        malformed_tensor("ids", tensor("ids", "INT64", [1], [True])),
        malformed_tensor("ids", tensor("ids", "INT8", [1], [-129])),
        malformed_tensor("ids", tensor("ids", "UINT8", [1], [-1])),
        malformed_tensor("ids", tensor("ids", "INT64", [1], [2**63])),
        malformed_tensor("active", tensor("active", "BOOL", [1], [1])),
        malformed_tensor("tags", tensor("tags", "BYTES", [1], [1])),
        malformed_tensor("tags", tensor("tags", "BYTES", [1], [None])),
        malformed_tensor("tags", tensor("tags", "BYTES", [1], {"a": 1})),
        malformed_tensor("tags", tensor("tags", "BYTES", [1])),
        malformed_tensor("tags", tensor("tags", "BYTES", [1], ["a"], size=5), bytes_elements(b"a")),
        # binary framing
        malformed_tensor("vec", tensor("vec", "FP32", [2], size=8)),  # no tail at all
        malformed_tensor("vec", tensor("vec", "FP32", [2], size=8), b"\0" * 12, named=False),
        malformed_tensor("vec", tensor("vec", "FP32", [2], size=8), b"\0" * 4),  # short tail
        malformed_tensor("vec", tensor("vec", "FP32", [2], size=6), b"\0" * 6),
        malformed_tensor("vec", tensor("vec", "FP32", [3], size=8), b"\0" * 8),
        malformed_tensor("vec", tensor("vec", "FP32", [2], size=-8), b"\0" * 8),
        malformed_tensor("tags", tensor("tags", "BYTES", [1], size=3), b"\1\0\0"),  # cut length
        malformed_tensor("tags", tensor("tags", "BYTES", [1], size=6), b"\5\0\0\0ab"),  # past end
        malformed_tensor("tags", tensor("tags", "BYTES", [3], size=10), bytes_elements(b"a", b"b")),
        malformed_tensor("tags", tensor("tags", "BYTES", [1], size=10), bytes_elements(b"a", b"b")),
        # well-formed, but not what the route takes
        malformed_tensor("age", None, status=422),
        malformed_tensor("extra", tensor("extra", "INT64", [1], [1]), status=422),
        malformed_tensor("age", tensor("age", "BYTES", [1], ["3"]), status=422),
        malformed_tensor("age", tensor("age", "FP64", [1], [3.0]), status=422),
        malformed_tensor("user_id", tensor("user_id", "INT64", [1], [3]), status=422),
        malformed_tensor("active", tensor("active", "INT8", [1], [1]), status=422),
        malformed_tensor("age", tensor("age", "INT64", [2], [3, 4]), status=422),
        malformed_tensor("age", tensor("age", "INT64", [0], []), status=422),
        malformed_tensor("tags", tensor("tags", "FP32", [1], [1.0]), status=422),
        malformed_tensor(
            "user_id", tensor("user_id", "BYTES", [1], size=6), bytes_elements(b"\xff\xfe"), 422
        ),
    ],
)
def test_malformed_request(
    body: bytes, header_length: int | None, status: int, field: str | None
) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(body, header_length, SCHEMA)
    assert caught.value.status == status
    if field is not None:
        assert caught.value.field == field
        assert f"'{field}'" in caught.value.message


def test_duplicate_input_is_malformed() -> None:
    tensors = json_tensors()
    with pytest.raises(InvalidInput, match="'age' appears twice") as caught:
        decode_infer_request(*raw_request({"inputs": [*tensors, tensors[1]]}), SCHEMA)
    assert caught.value.status == 400


def test_missing_input_names_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(*raw_request({"inputs": json_tensors(user_id=None)}), SCHEMA)
    assert (caught.value.message, caught.value.field, caught.value.status) == (
        "input 'user_id' is missing",
        "user_id",
        422,
    )


# --- properties -------------------------------------------------------------------------------

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
NUMBERS = st.one_of(INT64, FLOATS)


@st.composite
def rectangles(draw: st.DrawFn) -> list[Any]:
    shape = draw(st.lists(st.integers(0, 3), min_size=2, max_size=3))
    elements = st.one_of(st.lists(INT64, min_size=1), st.lists(NUMBERS, min_size=1))
    pool = draw(elements)

    def build(dims: list[int]) -> list[Any]:
        if len(dims) == 1:
            return [pool[draw(st.integers(0, len(pool) - 1))] for _ in range(dims[0])]
        return [build(dims[1:]) for _ in range(dims[0])]

    return build(shape)


OUTPUT_VALUES = st.one_of(
    st.text(),
    INT64,
    FLOATS,
    st.booleans(),
    st.lists(st.text(), max_size=5),
    st.lists(INT64, max_size=5),
    st.lists(FLOATS, max_size=5),
    st.lists(NUMBERS, max_size=5),
    st.lists(st.booleans(), max_size=5),
    rectangles(),
    st.none(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.just([[1], [2, 3]]),
)


def flatten(value: list[Any]) -> list[Any]:
    return [
        leaf for item in value for leaf in (flatten(item) if isinstance(item, list) else [item])
    ]


def expected_after_round_trip(value: Any) -> Any:
    """What decoding gives back: shape [1] is a scalar, nested lists come back flat,
    values without a tensor form come back as their JSON text."""
    if value is None or isinstance(value, dict) or value == [[1], [2, 3]]:
        return msgspec.json.encode(value).decode()
    if not isinstance(value, list):
        return value
    flat = flatten(value)
    if {type(v) for v in flat} == {int, float}:  # mixed numbers travel as FP64
        flat = [float(v) for v in flat]
    return flat[0] if len(value) == 1 and not isinstance(value[0], list) else flat


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1), OUTPUT_VALUES, max_size=6), st.booleans())
def test_outputs_round_trip(outputs: dict[str, Any], binary: bool) -> None:
    answer, header_length = encode_infer_response("m", "2", None, outputs, request(binary), {})
    assert (header_length is not None) == (binary and bool(outputs))
    decoded, version = decode_infer_response(answer, header_length)
    assert version == "2"
    assert decoded == {name: expected_after_round_trip(v) for name, v in outputs.items()}
    result = triton.InferResult.from_response_body(answer, header_length=header_length)
    for name, value in decoded.items():
        array = result.as_numpy(name).ravel().tolist()  # BYTES: bytes from binary, str from JSON
        assert [v.decode() if isinstance(v, bytes) else v for v in array] == (
            value if isinstance(value, list) else [value]
        )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.one_of(st.none(), st.integers(-2, 310)))
def test_random_bytes_raise_only_invalid_input(body: bytes, header_length: int | None) -> None:
    with contextlib.suppress(InvalidInput):
        decode_infer_request(body, header_length, SCHEMA)


VALID_BODY, _LENGTH = triton_body(triton_inputs(binary=True))
VALID_LENGTH = _LENGTH or 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID_BODY) - 1), st.binary(max_size=4)), max_size=4),
    st.integers(-3, 3),
)
def test_mutated_triton_bodies_raise_only_invalid_input(
    edits: list[tuple[int, bytes]], length_shift: int
) -> None:
    body = bytearray(VALID_BODY)
    for at, replacement in edits:
        body[at : at + len(replacement) // 2] = replacement
    with contextlib.suppress(InvalidInput):
        decode_infer_request(bytes(body), VALID_LENGTH + length_shift, SCHEMA)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FLOATS | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from([*SCHEMA, "other"])
DATATYPE_NAMES = st.sampled_from(
    [*sorted(set(DATATYPES.values())), "INT8", "UINT64", "FP16", "BF16", "X"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"name": FIELD_NAMES, "datatype": DATATYPE_NAMES,
             "shape": st.lists(st.integers(-1, 3), max_size=2)},
            optional={"data": JSON_VALUES,
                      "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-1, 12)})},
        ),
        max_size=8,
    ),
    st.binary(max_size=24),
)  # fmt: skip
def test_random_tensors_raise_only_invalid_input(tensors: list[Any], tail: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        decode_infer_request(*raw_request({"inputs": tensors}, tail), SCHEMA)
    head = msgspec.json.encode({"outputs": tensors})
    with contextlib.suppress(UpstreamMalformed):
        decode_infer_response(head + tail, len(head))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_upstream_malformed(body: bytes) -> None:
    with contextlib.suppress(UpstreamMalformed):
        decode_upstream_response(body)
