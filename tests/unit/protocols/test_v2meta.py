"""Model metadata as tensor specs, and when declared specs contradict a server's."""

from __future__ import annotations

import msgspec
import pytest

from failwell.config.tensors import Datatype, TensorSpec
from failwell.protocols.v2meta import disagreements, merged, parse_metadata


def spec(datatype: str, *shape: int) -> TensorSpec:
    return TensorSpec(datatype=Datatype(datatype), shape=shape)


def test_metadata_becomes_specs() -> None:
    body = msgspec.json.encode(
        {
            "name": "m",
            "platform": "x",
            "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
            "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1, 1]}],
        }
    )
    schema = parse_metadata(body)
    assert schema.inputs == {"image": spec("FP32", -1, 3, 224, 224)}
    assert schema.outputs == {"score": spec("FP32", -1, 1)}


@pytest.mark.parametrize(
    "body, words",
    [
        (b"<html>", "not V2 model metadata"),
        (b'{"name": "m", "inputs": []}', "publishes no inputs"),
        (b'{"inputs": [{"name": "x", "datatype": "BF16", "shape": [1]}]}', "BF16"),
    ],
)
def test_metadata_a_tensor_route_cannot_take_is_a_clear_error(body: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_metadata(body)


def test_declared_specs_must_not_contradict_the_server() -> None:
    server = {"x": spec("FP32", -1, 3, -1, -1)}
    assert disagreements({"x": spec("FP32", -1, 3, 64, 64)}, server, "input") == []
    assert disagreements({"x": spec("FP32", 8, 3, 64, -1)}, server, "input") == []
    (wrong_type,) = disagreements({"x": spec("FP64", -1, 3, -1, -1)}, server, "input")
    assert "declared FP64 [-1, 3, -1, -1], the model server says FP32 [-1, 3, -1, -1]" in wrong_type
    assert disagreements({"x": spec("FP32", -1, 4, -1, -1)}, server, "input")
    assert disagreements({"x": spec("FP32", -1, 3)}, server, "input")
    assert "'y' is declared" in disagreements({"y": spec("FP32", 1)}, server, "input")[0]
    two = {**server, "ids": spec("INT64", -1)}
    assert "'ids' is not declared" in disagreements(server, two, "input")[0]
    assert disagreements({}, two, "input") == []  # nothing declared: the server's specs
    assert disagreements({}, server, "output") == []  # a route may declare fewer outputs


def test_a_declared_size_narrows_the_server_spec() -> None:
    server = {"x": spec("FP32", -1, 3, -1, -1)}
    assert merged({"x": spec("FP32", -1, 3, 64, 64)}, server) == {"x": spec("FP32", -1, 3, 64, 64)}
    assert merged({}, server) == server
