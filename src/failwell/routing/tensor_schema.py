"""A tensor route's schema: check a request's tensors against the specs, and shape every
tier's answer into ``Tensors`` that match the batch.

Requests: every input named by the route must come, and nothing else; each with the declared
datatype (no silent FP32 → FP64), rank and fixed dimensions (``-1``: any size). Inputs whose
first dimension is variable share the batch size. A mismatch is ``InvalidInput`` 422 naming
the tensor and the dimension; it never reaches a tier, so it never trips a breaker.

Answers (``conform``, run by the tier chain on every tier's outputs, so an answer that does
not fit falls through to the next tier):

- a model tier's ``Tensors`` (a V2 upstream) stay as they are; an in-process model's named
  arrays become tensors;
- a rules function gets the batch as named numpy arrays and answers per row: a mapping of
  name → array with one row per batch row, or a list with one answer per row;
- a static value is one row's answer, repeated for every row of the batch;
- a cached answer is the tensors stored when tier 1 answered the same bytes.

Declared output specs cast rules and static answers to their datatype and check the shape of
rules, cache and static answers (a first dimension of ``-1`` there must equal the batch); a
model's answer is passed on as the model gave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from failwell.config.models import TierKind
from failwell.config.tensors import SchemaSource, TensorsConfig, TensorSpec
from failwell.contracts import Request
from failwell.errors import InvalidInput, SchemaUnknown, TierFailed
from failwell.protocols.tensor import Tensor, Tensors, restore, tensor_of

Specs = dict[str, TensorSpec]


def spec_text(spec: TensorSpec) -> str:
    return f"{spec.datatype.value} {list(spec.shape)}"


class TensorSchema:
    def __init__(self, route: str, config: TensorsConfig) -> None:
        self.route = route
        self.config = config
        self.source = config.origin
        self.outputs: Specs = dict(config.outputs)
        # None until the model server's specs are known
        self.inputs: Specs | None = None
        if self.source is SchemaSource.DECLARED:
            self.inputs = dict(config.inputs)
        elif self.source is SchemaSource.PASSTHROUGH:
            self.inputs = {}
        self.problem = "its model server has not been reached yet"

    @property
    def passthrough(self) -> bool:
        return self.source is SchemaSource.PASSTHROUGH

    def bind(self, inputs: Specs, outputs: Specs) -> None:
        """Take the specs the model server published (checked against the declared ones)."""
        self.inputs, self.outputs = dict(inputs), dict(outputs)

    # -- requests -----------------------------------------------------------------------------

    def check(self, tensors: Tensors) -> Tensors:
        """``tensors`` when they fit the route; raises InvalidInput (422) or SchemaUnknown."""
        specs = self.inputs
        if specs is None:
            raise SchemaUnknown(f"route {self.route!r} has no tensor specs: {self.problem}")
        if self.passthrough:
            return tensors
        batch: tuple[str, int] | None = None
        for name, tensor in tensors.items():
            spec = specs.get(name)
            if spec is None:
                raise InvalidInput(
                    f"input {name!r} is not an input of this route (it takes {', '.join(specs)})",
                    name,
                )
            _fits(tensor, spec)
            if spec.shape and spec.shape[0] == -1:
                if batch is not None and tensor.shape[0] != batch[1]:
                    raise InvalidInput(
                        f"input {name!r}: dimension 0 (the batch) is {tensor.shape[0]}, but "
                        f"input {batch[0]!r} has {batch[1]} rows",
                        name,
                    )
                batch = batch or (name, tensor.shape[0])
        for name, spec in specs.items():
            if name not in tensors:
                raise InvalidInput(f"input {name!r} ({spec_text(spec)}) is missing", name)
        return tensors

    def from_values(self, values: Mapping[str, Any]) -> Tensors:
        """Tensors from Python values (numpy arrays, nested lists, Tensors), in the declared
        datatypes, checked like a V2 request (the in-process API and /v1/predict)."""
        specs = self.inputs or {}
        tensors = Tensors()
        for name, value in values.items():
            spec = specs.get(name)
            datatype = spec.datatype.value if spec is not None else None
            try:
                tensors[name] = tensor_of(name, value, datatype, binary=False)
            except (ValueError, OverflowError, TypeError) as exc:
                raise InvalidInput(f"input {name!r}: {exc}", name) from None
        return self.check(tensors)

    # -- answers ------------------------------------------------------------------------------

    def conform(self, request: Request, outputs: Any, kind: TierKind) -> Tensors:
        """A tier's outputs as ``Tensors`` matching the request's batch; raises TierFailed."""
        rows = request.inputs.rows if isinstance(request.inputs, Tensors) else 1
        try:
            if kind is TierKind.STATIC:
                tensors = self._tensors(_named(outputs, self._single), rows, repeat=True)
            elif kind is TierKind.RULES:
                tensors = self._tensors(_per_row(outputs, rows, self._single), rows)
            elif kind is TierKind.CACHE:
                tensors = Tensors({n: restore(n, v) for n, v in _named(outputs, "").items()})
            elif isinstance(outputs, Tensors):
                return outputs  # a V2 model's answer, as it is
            else:  # an in-process model's arrays, as they are
                return self._tensors(_named(outputs, self._single), rows, cast=False)
        except (ValueError, OverflowError, TypeError, KeyError) as exc:
            raise TierFailed(
                f"answer does not fit the route's tensors: {exc}", "bad_shape"
            ) from None
        self._check_outputs(tensors, rows)
        return tensors

    @property
    def _single(self) -> str:
        """The name of an answer given as one unnamed value."""
        return next(iter(self.outputs)) if len(self.outputs) == 1 else "output"

    def _tensors(
        self, named: Mapping[str, Any], rows: int, *, repeat: bool = False, cast: bool = True
    ) -> Tensors:
        out = Tensors()
        for name, value in named.items():
            spec = self.outputs.get(name)
            datatype = spec.datatype.value if spec is not None and cast else None
            if repeat:
                row = np.asarray(value)
                value = np.broadcast_to(row, (rows, *row.shape))
            out[name] = tensor_of(name, value, datatype)
        return out

    def _check_outputs(self, tensors: Tensors, rows: int) -> None:
        for name, spec in self.outputs.items():
            tensor = tensors.get(name)
            if tensor is None:
                continue  # a route may answer fewer outputs than the model declares
            try:
                _fits(tensor, spec, "output", datatype=False)
                if spec.shape and spec.shape[0] == -1 and tensor.shape[0] != rows:
                    raise InvalidInput(
                        f"output {name!r} has {tensor.shape[0]} rows for a batch of {rows}"
                    )
            except InvalidInput as exc:
                raise TierFailed(exc.message, "bad_shape") from None


def _fits(tensor: Tensor, spec: TensorSpec, role: str = "input", datatype: bool = True) -> None:
    name = tensor.name
    if datatype and tensor.datatype != spec.datatype.value:
        raise InvalidInput(
            f"{role} {name!r}: datatype {tensor.datatype}, expected {spec_text(spec)}", name
        )
    shape = tensor.shape
    if len(shape) != len(spec.shape):
        raise InvalidInput(
            f"{role} {name!r}: shape {list(shape)} has rank {len(shape)}, expected "
            f"{len(spec.shape)} ({spec_text(spec)})",
            name,
        )
    for index, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if want != -1 and got != want:
            raise InvalidInput(
                f"{role} {name!r}: dimension {index} is {got}, expected {want} ({spec_text(spec)})",
                name,
            )


def _named(outputs: Any, single: str) -> Mapping[str, Any]:
    return outputs if isinstance(outputs, Mapping) else {single: outputs}


def _per_row(outputs: Any, rows: int, single: str) -> Mapping[str, Any]:
    """A rules answer, one row per batch row: ``{name: rows}`` or ``[answer per row]``."""
    if isinstance(outputs, Mapping):
        named = dict(outputs)
    elif isinstance(outputs, list | tuple) and outputs and isinstance(outputs[0], Mapping):
        named = {name: [row[name] for row in outputs] for name in outputs[0]}
    else:
        named = {single: outputs}
    for name, value in named.items():
        got = len(value) if hasattr(value, "__len__") else 1
        if got != rows:
            raise ValueError(f"{name!r} has {got} rows for a batch of {rows}")
    return named
