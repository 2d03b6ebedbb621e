"""Counting a JSON tensor's numbers instead of parsing them: whenever ``number_count`` answers,
it is what parsing would have found, and a request is accepted or refused the same either
way; a counted FP32 tensor goes upstream as the very text the client sent."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import msgspec
import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st

from failwell.config.tensors import TensorWire
from failwell.errors import InvalidInput
from failwell.protocols.v2tensors import decode_tensor_request, encode_tensor_upstream
from failwell.protocols.v2text import COUNT_FROM, number_count

COUNTED: Counter[bool] = Counter()
plain = st.floats(min_value=-1e6, max_value=1e6, width=32)
odd = st.sampled_from(
    ["1e999", "-1e400", "1E+308", "2e-999", "1" + "0" * 320, "0.5e99", "-0", "3", "1e5"]
)


def text_of(values: list[Any], spaces: str, nested: bool) -> bytes:
    items = [v if isinstance(v, str) else json.dumps(v) for v in values]
    if nested:
        half = len(items) // 2
        return f"[[{f',{spaces}'.join(items[:half])}],[{','.join(items[half:])}]]".encode()
    return f"[{f',{spaces}'.join(items)}]".encode()


def parsed(text: bytes) -> int | None:
    """The number of elements parsing finds, or None when it refuses the text."""
    try:
        values = msgspec.json.decode(text, type=list[float])
    except msgspec.ValidationError:
        return None
    return len(values)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(plain, min_size=1200, max_size=1600),  # 1200 at 4 bytes or more: counted
    st.lists(st.tuples(st.integers(min_value=0), odd), max_size=3),
    st.sampled_from(["", " ", "\n  "]),
    st.booleans(),
)
def test_a_count_is_what_parsing_finds(
    values: list[Any], odd: list[tuple[int, str]], spaces: str, nested: bool
) -> None:
    mixed: list[Any] = list(values)
    for at, number in odd:
        mixed[at % len(mixed)] = number
    text = text_of(mixed, spaces, nested)
    counted = number_count(text)
    COUNTED[counted is not None] += 1
    if counted is not None:
        assert counted == parsed(text) == len(mixed)


def test_the_property_saw_both_ways() -> None:
    """Hypothesis's cases above were counted and left to the parser both (run after it)."""
    assert COUNTED[True] and COUNTED[False], COUNTED


def test_a_plain_batch_is_counted_and_anything_doubtful_is_left_to_the_parser() -> None:
    rows = np.random.default_rng(0).normal(size=2000).tolist()
    plain = json.dumps(rows).encode()
    assert len(plain) >= COUNT_FROM and number_count(plain) == 2000
    assert number_count(json.dumps(rows[:10]).encode()) is None  # small: parsed
    doubtful = [
        json.dumps([*rows, "1"]),  # a string
        json.dumps([*rows, True]),  # a literal
        json.dumps([rows[:1000], rows[1000:]]),  # nested
        json.dumps(rows)[:-1] + ",1e999]",  # out of range
        json.dumps(rows)[:-1] + ",1" + "0" * 400 + "]",  # a long number
    ]
    assert [number_count(t.encode()) for t in doubtful] == [None] * len(doubtful)


def json_request(x: np.ndarray[Any, Any], first: str = "") -> bytes:
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    body: bytes = triton.InferenceServerClient.generate_request_body([tensor])[0]
    if first:  # in place of the first element's text
        head, _, rest = body.partition(b'"data":[')
        body = head + b'"data":[' + first.encode() + rest[rest.index(b",") :]
    return body


def test_a_counted_fp32_batch_goes_upstream_as_the_text_it_came_in() -> None:
    x = np.random.default_rng(1).normal(size=(64, 128)).astype(np.float32)
    body = json_request(x)
    request = decode_tensor_request(body, None)
    tensor = request.inputs["x"]
    sent = msgspec.json.decode(body)["inputs"][0]["data"]
    parts, _ = encode_tensor_upstream(request.inputs, None, TensorWire.MIRROR)
    assert msgspec.json.decode(b"".join(parts))["inputs"][0]["data"] == sent
    # parsed only when a tier looks at the values, as the same FP32 array
    assert tensor.array().dtype == np.float32 and np.array_equal(tensor.array(), x)


@pytest.mark.parametrize(
    "shape, first, found",
    [((64, 129), "", "has 8192 elements, but its shape needs 8256"), ((64, 128), "1e999", "")],
    ids=["count", "range"],
)
def test_a_bad_json_batch_is_a_400_naming_the_tensor(
    shape: tuple[int, int], first: str, found: str
) -> None:
    x = np.zeros((64, 128), dtype=np.float32)
    body = json_request(x, first)
    if shape != x.shape:
        body = body.replace(b"[64,128]", f"[{shape[0]},{shape[1]}]".encode(), 1)
    with pytest.raises(InvalidInput) as err:
        decode_tensor_request(body, None)
    assert err.value.status == 400 and err.value.field == "x"
    assert found in err.value.message
