"""A batch taken apart by rows and put back together (protocols/tensorrows.py): pure."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from failwell.protocols.tensor import Tensors, tensor_of
from failwell.protocols.tensorrows import RowAssembly, batch_of, rows_of, take


def tensors(**arrays: Any) -> Tensors:
    return Tensors({name: tensor_of(name, value) for name, value in arrays.items()})


def test_the_batch_is_carried_by_every_tensor_but_the_fixed_ones() -> None:
    t = tensors(x=np.zeros((4, 3), np.float32), k=np.zeros(3, np.int64), y=np.ones((4,), bool))
    assert batch_of(t, {"k"}) == (4, ["x", "y"])
    with pytest.raises(ValueError, match="'k' has 3 rows"):
        batch_of(t)
    with pytest.raises(ValueError, match="no tensor"):
        batch_of(t, {"x", "y", "k"})


def test_take_keeps_datatype_per_row_shape_and_order_and_passes_fixed_tensors_whole() -> None:
    x = np.arange(24, dtype=np.int16).reshape(4, 2, 3)
    words = np.array([[b"a"], [b"bb"], [b""], [b"dddd"]], dtype=object)
    batch = tensors(x=x, w=words, k=np.arange(3, dtype=np.float64))
    part = take(batch, [3, 1], ["x", "w"])
    assert part["x"].datatype == "INT16" and part["x"].shape == (2, 2, 3)
    assert np.array_equal(part["x"].array(), x[[3, 1]])
    assert part["w"].datatype == "BYTES" and part["w"].array().tolist() == [[b"dddd"], [b"bb"]]
    assert part["k"] is batch["k"]


def test_rows_of_gives_each_row_as_a_batch_of_one_with_the_bytes_of_that_row() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = rows_of(tensors(x=x), 3, ["x"])
    assert [r["x"].shape for r in rows] == [(1, 4)] * 3
    assert [bytes(r["x"].data) for r in rows] == [x[i : i + 1].tobytes() for i in range(3)]
    # a row's digest is the digest of a batch of one row sent alone: one cache key for both
    assert rows[1].digest() == tensors(x=x[1:2]).digest()
    assert isinstance(rows[0]["x"].data, memoryview)  # a view of the batch's bytes
    kept = rows_of(tensors(x=x), 3, ["x"], copy=True)
    assert type(kept[2]["x"].data) is bytes and kept[2].digest() == rows[2].digest()


def test_parts_go_back_in_row_order() -> None:
    assembly = RowAssembly(5)
    assembly.add([4, 0], tensors(score=np.array([[40.0], [0.0]], np.float32)))
    assembly.add([2], tensors(score=np.array([[20.0]], np.float32)))
    assembly.add([1, 3], tensors(score=np.array([[10.0], [30.0]], np.float32)))
    out = assembly.tensors()
    assert out["score"].datatype == "FP32" and out["score"].shape == (5, 1)
    assert out["score"].array()[:, 0].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_bytes_outputs_reassemble() -> None:
    assembly = RowAssembly(3)
    assembly.add([1], tensors(label=np.array([b"cat"], dtype=object)))
    assembly.add([0, 2], tensors(label=np.array([b"", b"dog!"], dtype=object)))
    out = assembly.tensors()["label"]
    assert out.datatype == "BYTES" and out.array().tolist() == [b"", b"cat", b"dog!"]


@pytest.mark.parametrize(
    "part, problem",
    [
        ({"score": np.array([[1.0]], np.float64)}, "differ"),  # FP64 after FP32: never cast
        ({"score": np.array([[1.0, 2.0]], np.float32)}, "differ"),  # another per-row shape
        ({"other": np.array([[1.0]], np.float32)}, "differ"),  # another output
        ({"score": np.array([[1.0], [2.0]], np.float32)}, "for 1 rows"),  # too many rows
    ],
)
def test_a_part_of_another_form_is_refused_and_not_kept(part: dict[str, Any], problem: str) -> None:
    assembly = RowAssembly(2)
    assembly.add([0], tensors(score=np.array([[0.5]], np.float32)))
    with pytest.raises(ValueError, match=problem):
        assembly.add([1], tensors(**part))
    with pytest.raises(ValueError, match="1 of 2 rows answered"):
        assembly.tensors()


@given(
    rows=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 11), max_size=6),
)
def test_any_partition_of_the_rows_reassembles_to_the_batch(
    rows: int, seed: int, cuts: list[int]
) -> None:
    x = np.random.default_rng(seed).normal(size=(rows, 2, 3)).astype(np.float32)
    batch = tensors(x=x)
    order = np.random.default_rng(seed).permutation(rows).tolist()
    bounds = sorted({0, rows, *(c % (rows + 1) for c in cuts)})
    assembly = RowAssembly(rows)
    for start, end in itertools.pairwise(bounds):
        indices = order[start:end]
        assembly.add(indices, take(batch, indices, ["x"]))
    out = assembly.tensors()["x"]
    assert out.shape == x.shape and bytes(out.data) == x.tobytes()
