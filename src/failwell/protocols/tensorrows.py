"""A batch of tensors taken apart by rows and put back together: what per-row fallback
(``routes.NAME.fallback: rows``) does with a batch once tier 1 has failed.

- ``batch_of``: the batch size and the tensors that carry it (the first dimension of every
  tensor with one, except those declared with a fixed first dimension);
- ``take``: a sub-batch of some rows, in the datatype and per-row shape of the batch (the
  tensors that do not carry the batch go on whole);
- ``rows_of``: every row as a batch of one (what the cache stores per row);
- ``RowAssembly``: answers for some rows each, put back in row order into one batch; the
  first part sets the form (names, datatypes, per-row shapes) and a part that differs from it
  is refused (``ValueError``), never converted.

Pure functions of numpy arrays: no I/O, no tiers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from failwell.config.tensors import Datatype
from failwell.protocols.tensor import Tensor, Tensors, tensor_of

Form = dict[str, tuple[str, tuple[int, ...]]]  # name → (datatype, the shape of one row)


def batch_of(tensors: Tensors, unbatched: Collection[str] = ()) -> tuple[int, list[str]]:
    """The batch size and the names of the tensors that carry it; raises ValueError when
    they disagree or no tensor carries a batch."""
    rows: int | None = None
    names = []
    for name, tensor in tensors.items():
        if not tensor.shape or name in unbatched:
            continue
        if rows is not None and tensor.shape[0] != rows:
            raise ValueError(f"{name!r} has {tensor.shape[0]} rows, another tensor {rows}")
        rows = tensor.shape[0]
        names.append(name)
    if rows is None:
        raise ValueError("no tensor has a batch dimension")
    return rows, names


def take(tensors: Tensors, indices: Sequence[int], batched: Collection[str]) -> Tensors:
    """The rows ``indices`` of ``tensors`` as a batch of their own (the others as they are)."""
    out = Tensors()
    for name, tensor in tensors.items():
        if name in batched:
            part = tensor.array()[list(indices)]
            out[name] = tensor_of(name, part, tensor.datatype, binary=tensor.binary)
        else:
            out[name] = tensor
    return out


def rows_of(
    tensors: Tensors, rows: int, batched: Collection[str], *, copy: bool = False
) -> list[Tensors]:
    """Every row of ``tensors`` as a batch of one row: views of the bytes for fixed-size
    datatypes (``copy``: bytes of their own, to keep without the buffer), BYTES through an
    array read once."""
    out = [Tensors() for _ in range(rows)]
    for name, tensor in tensors.items():
        if name not in batched:
            for row in out:
                row[name] = tensor
            continue
        shape = (1, *tensor.shape[1:])
        if tensor.datatype == "BYTES":
            array = tensor.array()
            for i, row in enumerate(out):
                row[name] = tensor_of(name, array[i : i + 1], "BYTES")
            continue
        data = memoryview(tensor.data).cast("B")
        size = len(data) // rows if rows else 0
        for i, row in enumerate(out):
            part = data[i * size : (i + 1) * size]
            row[name] = Tensor(name, tensor.datatype, shape, bytes(part) if copy else part)
    return out


class RowAssembly:
    """Parts of one batch's answer, each for some of its rows, put back in row order."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.form: Form | None = None
        self._parts: list[tuple[list[int], dict[str, np.ndarray[Any, Any]]]] = []

    def add(self, indices: Sequence[int], tensors: Tensors) -> None:
        """The answer for rows ``indices`` (a batch of ``len(indices)`` rows, in that order);
        raises ValueError when it has another form than the parts before it."""
        form: Form = {}
        for name, tensor in tensors.items():
            if not tensor.shape or tensor.shape[0] != len(indices):
                raise ValueError(
                    f"output {name!r} has shape {list(tensor.shape)} for {len(indices)} rows"
                )
            form[name] = (tensor.datatype, tensor.shape[1:])
        if self.form is None:
            self.form = form
        elif form != self.form:
            raise ValueError(
                f"outputs {_text(form)} differ from the rows before ({_text(self.form)})"
            )
        arrays = {name: tensor.array() for name, tensor in tensors.items()}
        self._parts.append((list(indices), arrays))

    def tensors(self) -> Tensors:
        """The whole batch's answer; every row must have been answered."""
        assert self.form is not None
        answered = sum(len(indices) for indices, _ in self._parts)
        if answered != self.rows:
            raise ValueError(f"{answered} of {self.rows} rows answered")
        out = Tensors()
        for name, (datatype, row) in self.form.items():
            dtype = object if datatype == "BYTES" else Datatype(datatype).numpy
            whole: np.ndarray[Any, Any] = np.empty((self.rows, *row), dtype=dtype)
            for indices, arrays in self._parts:
                whole[indices] = arrays[name]
            out[name] = tensor_of(name, whole, datatype)
        return out


def _text(form: Form) -> str:
    return ", ".join(f"{n}: {d} {list(s)}" for n, (d, s) in form.items())
