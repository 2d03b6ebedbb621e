"""The v2 codec of tensor routes, for both sides of the gateway: tensors stay bytes.

Gateway side: :func:`decode_tensor_request` reads a client's request into ``Tensors`` (binary
data as views into the body, JSON data packed into the same little-endian bytes) and
:func:`encode_tensor_response` answers in the form the client asked for (binary or JSON, per
output). Client side: :func:`encode_tensor_upstream` sends each tensor with the very bytes
the client sent (binary extension) or as JSON, and :func:`decode_tensor_response` reads the
upstream's answer, binary or JSON, into ``Tensors``.

Shapes and datatypes pass as they are: a ``[4, 3, 299, 299]`` FP32 batch reaches the upstream
as exactly that. What is not well-formed (bad JSON or framing, an unknown datatype, an element
count or binary size that does not fit the shape) is ``InvalidInput`` 400 naming the tensor;
whether the tensors fit the route is the route's check (``routing/tensor_schema.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET

from failwell.config.tensors import TensorWire
from failwell.errors import InvalidInput, UpstreamMalformed
from failwell.protocols.tensor import (
    FLOATS,
    Tensor,
    Tensors,
    check_datatype,
    from_wire,
    json_tensor,
)
from failwell.protocols.v2binary import (
    V2Malformed,
    check_count,
    element_count,
    elements,
)
from failwell.protocols.v2framing import slice_parts, split_parts
from failwell.protocols.v2text import number_count
from failwell.protocols.v2wire import (
    ENCODER,
    REQUEST,
    RESPONSE,
    RequestOut,
    ResponseOut,
    TensorOut,
    WireTensor,
    output_choices,
)

# A request body: whole, or in the parts it arrived in.
Body = bytes | memoryview | Sequence[bytes | memoryview]


@dataclass(slots=True)
class TensorRequest:
    inputs: Tensors
    request_id: str | None  # the v2 "id" field
    binary_output: bool  # whether the client wants binary outputs by default
    binary_outputs: dict[str, bool]  # per requested output name -> binary flag
    requested: list[str] | None  # names in "outputs" if given, else None (= all)


def read_tensors(tensors: list[WireTensor], tail: list[memoryview], role: str) -> Tensors:
    """The tensors of a message, checked for well-formedness; raises V2Malformed."""
    sizes = [(t.name, t.parameters.binary_data_size if t.parameters else None) for t in tensors]
    chunks = slice_parts(sizes, tail, role)
    out = Tensors()
    for wire, chunk in zip(tensors, chunks, strict=True):
        name = wire.name
        if name in out:
            raise V2Malformed(f"{role} {name!r} appears twice", name)
        try:
            out[name] = _tensor(wire, chunk)
        except V2Malformed as exc:
            raise V2Malformed(f"{role} {name!r}: {exc.message}", name) from None
    return out


def _tensor(wire: WireTensor, chunk: tuple[memoryview, ...] | None) -> Tensor:
    check_datatype(wire.datatype)
    shape = tuple(wire.shape)
    if chunk is not None:
        if len(wire.data):
            raise V2Malformed("has both data and parameters.binary_data_size")
        return from_wire(wire.name, wire.datatype, shape, chunk, element_count(wire.shape))
    if wire.datatype in FLOATS:  # passed on as the text it came in: count, don't parse
        found = number_count(bytes(wire.data))
        if found is not None:
            check_count(found, element_count(wire.shape))
            return Tensor(wire.name, wire.datatype, shape, None, False, wire.data)
    values = elements(wire.datatype, wire.shape, wire.data, None)
    try:
        return json_tensor(wire.name, wire.datatype, shape, values, wire.data)
    except (ValueError, OverflowError) as exc:
        raise V2Malformed(f"data does not fit {wire.datatype}: {exc}") from None


# --- gateway side ---------------------------------------------------------------------------


def decode_tensor_request(body: Body, header_length: int | None) -> TensorRequest:
    """The tensors of a client's v2 request (its body, or the parts it arrived in: binary
    tensors stay views of them, not joined); raises InvalidInput (400)."""
    try:
        parts = [body] if isinstance(body, bytes | memoryview) else body
        header, tail = split_parts(parts, header_length)
        request = REQUEST.decode(header)
        inputs = read_tensors(request.inputs, tail, "input")
        binary_output, binary_outputs = output_choices(request)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidInput(f"not a valid v2 inference request: {exc}", status=400) from None
    except V2Malformed as exc:
        raise InvalidInput(exc.message, field=exc.tensor, status=400) from None
    requested = list(binary_outputs) if binary_outputs else None
    return TensorRequest(inputs, request.id, binary_output, binary_outputs, requested)


def encode_tensor_response(
    model_name: str,
    model_version: str | None,
    outputs: Tensors,
    request: TensorRequest,
    parameters: Mapping[str, Any],
) -> tuple[bytes, int | None]:
    """The response body, and the inference header's length when binary data follows it."""
    names = list(outputs) if request.requested is None else request.requested
    wires: list[TensorOut] = []
    blobs: list[bytes | memoryview] = []
    for name in names:
        tensor = outputs.get(name)
        if tensor is None:
            raise InvalidInput(f"output {name!r} is not an output of this route", name)
        binary = request.binary_outputs.get(name, request.binary_output)
        wires.append(_wire(tensor, binary))
        if binary:
            blobs.append(tensor.data)
    header = ENCODER.encode(
        ResponseOut(
            model_name=model_name,
            model_version=UNSET if model_version is None else model_version,
            id=UNSET if request.request_id is None else request.request_id,
            parameters=dict(parameters),
            outputs=wires,
        )
    )
    if not blobs:
        return header, None
    return b"".join((header, *blobs)), len(header)


def _wire(tensor: Tensor, binary: bool) -> TensorOut:
    shape = list(tensor.shape)
    if binary:
        size = {"binary_data_size": tensor.nbytes}
        return TensorOut(name=tensor.name, datatype=tensor.datatype, shape=shape, parameters=size)
    if tensor.text is not None:  # JSON in, JSON out: the elements as they came
        return TensorOut(name=tensor.name, datatype=tensor.datatype, shape=shape, data=tensor.text)
    try:
        data = tensor.elements()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"output {tensor.name!r} holds bytes that are not UTF-8 text: ask for it in binary",
            tensor.name,
        ) from None
    return TensorOut(name=tensor.name, datatype=tensor.datatype, shape=shape, data=data)


# --- client side ----------------------------------------------------------------------------


def encode_tensor_upstream(
    inputs: Tensors, request_id: str | None, wire: TensorWire
) -> tuple[list[bytes | memoryview], int | None]:
    """A v2 request carrying ``inputs`` as they are, in parts (the JSON header, then each
    binary tensor's bytes, not copied), and the header's length when binary data follows it.
    Binary answers are asked for when any input goes in binary."""
    wires: list[TensorOut] = []
    blobs: list[bytes | memoryview] = []
    for tensor in inputs.values():
        binary = wire is TensorWire.BINARY or (wire is TensorWire.MIRROR and tensor.binary)
        try:
            wires.append(_wire(tensor, binary))
        except InvalidInput:
            raise InvalidInput(
                f"input {tensor.name!r} holds bytes that are not UTF-8 text, and this backend "
                "takes JSON tensors only",
                tensor.name,
            ) from None
        if binary:
            blobs.extend(tensor.parts())
    header = ENCODER.encode(
        RequestOut(
            id=UNSET if request_id is None else request_id,
            parameters={"binary_data_output": True} if blobs else UNSET,
            inputs=wires,
        )
    )
    return [header, *blobs], (len(header) if blobs else None)


def decode_tensor_response(body: bytes, header_length: int | None) -> tuple[Tensors, str | None]:
    """(outputs, model_version) from a v2 answer, binary data included; raises
    UpstreamMalformed."""
    try:
        header, tail = split_parts((body,), header_length)
        response = RESPONSE.decode(header)
        outputs = read_tensors(response.outputs, tail, "output")
    except (msgspec.DecodeError, RecursionError, V2Malformed) as exc:
        raise UpstreamMalformed(f"not a valid v2 inference response: {exc}") from None
    return outputs, response.model_version
