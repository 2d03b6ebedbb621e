"""A V2 model server's model metadata (``GET /v2/models/{model}``) as tensor specs, and how
they agree with the specs a route declares. Pure: the fetching is the caller's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from failwell.config.tensors import Datatype, TensorSpec


class _MetaTensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]


class _ModelMetadata(msgspec.Struct):
    name: str = ""
    inputs: list[_MetaTensor] = []
    outputs: list[_MetaTensor] = []


_decode = msgspec.json.Decoder(_ModelMetadata).decode


@dataclass(frozen=True, slots=True)
class ServerSchema:
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def parse_metadata(body: bytes) -> ServerSchema:
    """The specs a model server publishes; ValueError when it publishes none or ones a
    tensor route cannot take."""
    try:
        meta = _decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not V2 model metadata: {exc}") from None
    if not meta.inputs:
        raise ValueError("the model server publishes no inputs for this model")
    return ServerSchema(_specs(meta.inputs, "input"), _specs(meta.outputs, "output"))


def _specs(tensors: list[_MetaTensor], role: str) -> dict[str, TensorSpec]:
    specs: dict[str, TensorSpec] = {}
    for tensor in tensors:
        if tensor.datatype not in Datatype.__members__:
            raise ValueError(f"{role} {tensor.name!r}: datatype {tensor.datatype} is not supported")
        if any(d < -1 for d in tensor.shape):
            raise ValueError(f"{role} {tensor.name!r}: shape {tensor.shape} is not a shape")
        specs[tensor.name] = TensorSpec(datatype=Datatype(tensor.datatype), shape=tensor.shape)
    return specs


def disagreements(
    declared: dict[str, TensorSpec], published: dict[str, TensorSpec], role: str
) -> list[str]:
    """Where declared specs contradict published ones: a tensor on one side only, another
    datatype or rank, or two fixed dimensions that differ. (A declared -1 where the server
    fixes a size, or the reverse, is no contradiction; nothing declared agrees with all.)"""
    if not declared:
        return []
    out = [
        f"{role} {n!r} is declared but the model server has no such {role}"
        for n in declared
        if n not in published
    ]
    if role == "input":
        out += [
            f"the model server's input {n!r} is not declared"
            for n in published
            if n not in declared
        ]
    for name, mine in declared.items():
        theirs = published.get(name)
        if theirs is None:
            continue
        same_rank = len(mine.shape) == len(theirs.shape)
        fixed_differ = same_rank and any(
            a != b and -1 not in (a, b) for a, b in zip(mine.shape, theirs.shape, strict=True)
        )
        if mine.datatype is not theirs.datatype or not same_rank or fixed_differ:
            out.append(
                f"{role} {name!r}: declared {_text(mine)}, the model server says {_text(theirs)}"
            )
    return out


def merged(
    declared: dict[str, TensorSpec], published: dict[str, TensorSpec]
) -> dict[str, TensorSpec]:
    """The published specs, with each -1 the declared spec fixes replaced by its size."""
    out = dict(published)
    for name, mine in declared.items():
        theirs = published.get(name)
        if theirs is None or len(theirs.shape) != len(mine.shape):
            out[name] = mine
            continue
        shape = tuple(b if a == -1 else a for a, b in zip(mine.shape, theirs.shape, strict=True))
        out[name] = TensorSpec(datatype=theirs.datatype, shape=shape)
    return out


def _text(spec: TensorSpec) -> str:
    return f"{spec.datatype.value} {list(spec.shape)}"


def describe(schema: ServerSchema) -> dict[str, Any]:
    """The schema as plain data (for ``failwell check --probe``)."""
    return {
        role: {n: {"datatype": s.datatype.value, "shape": list(s.shape)} for n, s in specs.items()}
        for role, specs in (("inputs", schema.inputs), ("outputs", schema.outputs))
    }
