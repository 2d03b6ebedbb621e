"""The demo model server's field models behind v2: the echo model and the ranker, over
JSON tensors (``Tensor``, ``InferRequest``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import msgspec


class Tensor(msgspec.Struct, omit_defaults=True):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct):
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None


_decode_infer = msgspec.json.Decoder(InferRequest).decode


class Described(Protocol):
    """What the v2 metadata and readiness endpoints need of any model."""

    name: str
    version: str

    def metadata(self) -> dict[str, Any]: ...


class V2Model(Described, Protocol):
    """A field model: JSON tensors in, JSON tensors out."""

    def infer(self, inputs: list[Tensor]) -> list[Tensor]: ...


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in data:
        out.extend(_flat(value) if isinstance(value, list) else [value])
    return out


class EchoModel:
    """Answers every input tensor back as an output."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = "echo"

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "failwell-demo-echo",
            "inputs": [],
            "outputs": [],
        }

    def infer(self, inputs: list[Tensor]) -> list[Tensor]:
        return inputs


class RankerModel:
    """The primary demo ranker behind v2: BYTES user_id, country, category → INT64 items[10]."""

    FIELDS = ("user_id", "country", "category")

    def __init__(self, name: str, model_dir: Path) -> None:
        from failwell.demo.models import Ranker  # scikit-learn only when a ranker is served

        self._ranker = Ranker(model_dir)
        self.name = name
        self.version = self._ranker.version

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "failwell-demo-sklearn",
            "inputs": [{"name": n, "datatype": "BYTES", "shape": [1]} for n in self.FIELDS],
            "outputs": [{"name": "items", "datatype": "INT64", "shape": [10]}],
        }

    def infer(self, inputs: list[Tensor]) -> list[Tensor]:
        given = {t.name: t for t in inputs}
        values: dict[str, str] = {}
        for name in self.FIELDS:
            tensor = given.get(name)
            if tensor is None:
                raise ValueError(f"missing input tensor {name!r}")
            data = _flat(tensor.data)
            if len(data) != 1 or not isinstance(data[0], str):
                raise ValueError(f"input {name!r} must hold exactly one string")
            values[name] = data[0]
        items = self._ranker.predict(values)["items"]
        return [Tensor("items", "INT64", [len(items)], items)]
