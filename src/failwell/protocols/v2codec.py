"""Open Inference Protocol v2 (KServe v2 / Triton HTTP) codec, for both sides of the gateway.

Gateway side, for ``POST /v2/models/{route}/infer``: :func:`decode_infer_request` turns a
client's request (plain JSON, or JSON plus Triton binary tensor data) into route inputs, and
:func:`encode_infer_response` turns route outputs into the answer, in binary where the
client asked for it. Client side: :func:`encode_upstream_request` builds a plain-JSON request
for an upstream v2 server and :func:`decode_upstream_response` reads its answer.

Route fields and v2 tensors correspond by name. A request that is not a well-formed v2
message (bad JSON, framing, datatype, element count for the shape) is ``InvalidInput`` with
status 400; a well-formed one that does not fit the route (a missing or extra tensor, a
datatype or element count the field cannot take, text that is not UTF-8, an unknown output)
is ``InvalidInput`` with status 422. An upstream answer that is not well-formed is
``UpstreamMalformed``. Plain-JSON messages are handled with msgspec and Python lists only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from msgspec import UNSET, Struct

from failwell.config.fields import FieldType
from failwell.errors import InvalidInput, UpstreamMalformed
from failwell.protocols.v2binary import (
    FLOAT_TYPES,
    INT_TYPES,
    V2Malformed,
    elements,
    pack,
    tensor_of,
)
from failwell.protocols.v2framing import slice_tail, split_body
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

# Datatypes that carry each field type upstream; in a request, "float" takes integers too.
_SENDS: dict[str, frozenset[str]] = {
    "str": frozenset(("BYTES",)),
    "int": INT_TYPES,
    "float": FLOAT_TYPES,
    "bool": frozenset(("BOOL",)),
}
_ACCEPTS = {**_SENDS, "float": FLOAT_TYPES | INT_TYPES}
_DEFAULT_DATATYPE = {"str": "BYTES", "int": "INT64", "float": "FP64", "bool": "BOOL"}
_ELEMENT_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)
}  # fmt: skip
FIELD_TYPES: frozenset[str] = frozenset(t.value for t in FieldType)
_SPLIT = {t.value: (t.element.value, t.is_list) for t in FieldType}  # read per field and request


def _field_type(field_type: str) -> tuple[str, bool]:
    """('int', False) for "int", ('int', True) for "list[int]"."""
    split = _SPLIT.get(field_type)
    if split is None:
        raise ValueError(f"unknown v2 field type {field_type!r}; use one of {sorted(FIELD_TYPES)}")
    return split


# --- tensor data ------------------------------------------------------------------------------


def _texts(values: list[Any]) -> list[str]:
    """BYTES elements as text: str from JSON data as they are, bytes from binary data decoded
    (``elements`` gives all of a tensor's one way); raises UnicodeDecodeError."""
    if not values or type(values[0]) is str:
        return values
    return [v.decode() for v in values]


def _tensors(
    tensors: list[WireTensor], tail: memoryview, role: str
) -> list[tuple[WireTensor, list[Any]]]:
    """Each tensor with its elements, names unique; raises V2Malformed."""
    chunks: list[memoryview | None]
    if not tail and not any([t.parameters for t in tensors]):  # all JSON: no tail to slice
        chunks = [None] * len(tensors)
    else:
        sizes = [(t.name, t.parameters.binary_data_size if t.parameters else None) for t in tensors]
        chunks = slice_tail(sizes, tail, role)
    seen: set[str] = set()
    out: list[tuple[WireTensor, list[Any]]] = []
    for tensor, chunk in zip(tensors, chunks, strict=True):
        if tensor.name in seen:
            raise V2Malformed(f"{role} {tensor.name!r} appears twice", tensor.name)
        seen.add(tensor.name)
        try:
            out.append((tensor, elements(tensor.datatype, tensor.shape, tensor.data, chunk)))
        except V2Malformed as exc:
            raise V2Malformed(f"{role} {tensor.name!r}: {exc.message}", tensor.name) from None
    return out


# --- gateway side ---------------------------------------------------------------------------


class V2Request(Struct):  # msgspec's: built in C, no Python __init__ frame per request
    inputs: dict[str, Any]  # route input field -> python value
    request_id: str | None  # the v2 "id" field
    binary_output: bool  # whether the client wants binary outputs by default
    binary_outputs: dict[str, bool]  # per requested output name -> binary flag
    requested: list[str] | None  # names in "outputs" if given, else None (= all)


def decode_infer_request(
    body: bytes, header_length: int | None, schema: Mapping[str, str]
) -> V2Request:
    """Route inputs from a v2 inference request; raises InvalidInput (400 or 422)."""
    try:
        header, tail = split_body(body, header_length)
        request = REQUEST.decode(header)
        tensors = _tensors(request.inputs, tail, "input")
        binary_outputs: dict[str, bool]
        if request.outputs is None and request.parameters is None:  # the common case
            binary_output, binary_outputs = False, {}
        else:
            binary_output, binary_outputs = output_choices(request)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"not a valid v2 inference request: {exc}", status=400) from None
    except V2Malformed as exc:
        raise InvalidInput(exc.message, field=exc.tensor, status=400) from None
    inputs: dict[str, Any] = {}
    for tensor, values in tensors:
        field_type = schema.get(tensor.name)
        if field_type is None:
            raise InvalidInput(f"input {tensor.name!r} is not an input of this route", tensor.name)
        inputs[tensor.name] = _field_value(tensor.name, tensor.datatype, values, field_type)
    if len(inputs) != len(schema):  # every input is one of the schema's, each once
        missing = next(name for name in schema if name not in inputs)
        raise InvalidInput(f"input {missing!r} is missing", missing)
    requested = list(binary_outputs) if binary_outputs else None
    return V2Request(inputs, request.id, binary_output, binary_outputs, requested)


def _field_value(name: str, datatype: str, values: list[Any], field_type: str) -> Any:
    base, many = _field_type(field_type)
    if datatype not in _ACCEPTS[base]:
        raise InvalidInput(f"input {name!r}: a {datatype} tensor cannot hold a {field_type}", name)
    if not many and len(values) != 1:
        raise InvalidInput(f"input {name!r}: expected one element, got {len(values)}", name)
    if base == "str":
        try:
            values = _texts(values)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"input {name!r}: not UTF-8 text ({exc.reason})", name) from None
    elif base == "float" and datatype in INT_TYPES:
        values = [float(v) for v in values]
    return values if many else values[0]


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: Any,
    request: V2Request,
    parameters: dict[str, Any],
) -> tuple[bytes, int | None]:
    """The response body, and the inference header's length when binary data follows it."""
    named: Mapping[Any, Any] = outputs if isinstance(outputs, dict) else {"output": outputs}
    names: Iterable[Any] = named if request.requested is None else request.requested
    tensors: list[TensorOut] = []
    blobs: list[bytes] = []
    for name in names:
        if name not in named:
            raise InvalidInput(f"output {name!r} is not an output of this route", name)
        datatype, shape, flat = tensor_of(named[name])
        if request.binary_outputs.get(name, request.binary_output):
            blob = pack(datatype, flat)
            size = {"binary_data_size": len(blob)}
            tensors.append(
                TensorOut(name=str(name), datatype=datatype, shape=shape, parameters=size)
            )
            blobs.append(blob)
        else:
            tensors.append(TensorOut(name=str(name), datatype=datatype, shape=shape, data=flat))
    header = ENCODER.encode(
        ResponseOut(
            model_name=model_name,
            model_version=UNSET if model_version is None else model_version,
            id=UNSET if request_id is None else request_id,
            parameters=parameters,
            outputs=tensors,
        )
    )
    if not blobs:
        return header, None
    return b"".join((header, *blobs)), len(header)


# --- client side ----------------------------------------------------------------------------


def encode_upstream_request(
    inputs: Mapping[str, Any],
    schema: Mapping[str, str],
    request_id: str | None,
    *,
    datatypes: Mapping[str, str] | None = None,
) -> bytes:
    """A plain-JSON v2 request: one tensor per schema field, of shape [1] for a scalar and
    [1, n] for a list (a batch of one row, as scikit-learn or MLServer models expect).

    ``datatypes`` overrides a field's datatype (e.g. "FP32" for a float field), as upstream
    models take only the datatype they declare; by default str/int/float/bool are sent as
    BYTES/INT64/FP64/BOOL. Raises InvalidInput when a value does not fit its field type.
    """
    tensors: list[TensorOut] = []
    for name, field_type in schema.items():
        base, many = _field_type(field_type)
        if name not in inputs:
            raise InvalidInput(f"input {name!r} is missing", name)
        value = inputs[name]
        if many and not isinstance(value, list | tuple):
            raise InvalidInput(f"input {name!r}: expected a {field_type}", name)
        flat = list(value) if many else [value]
        allowed = _ELEMENT_TYPES[base]
        for v in flat:  # a loop, not any(): no generator per field and request
            if type(v) not in allowed:  # exact: a bool is no int
                raise InvalidInput(f"input {name!r}: expected a {field_type}", name)
        if base == "float":
            try:
                flat = [float(v) for v in flat]
            except OverflowError:
                raise InvalidInput(f"input {name!r}: too large for a float", name) from None
        datatype = (datatypes.get(name) if datatypes else None) or _DEFAULT_DATATYPE[base]
        if datatype not in _SENDS[base]:
            raise ValueError(f"input {name!r}: datatype {datatype} cannot carry a {field_type}")
        tensors.append(
            TensorOut(
                name=name, datatype=datatype, shape=[1, len(flat)] if many else [1], data=flat
            )
        )
    request = RequestOut(id=UNSET if request_id is None else request_id, inputs=tensors)
    return ENCODER.encode(request)


def decode_upstream_response(body: bytes) -> tuple[dict[str, Any], str | None]:
    """(outputs, model_version) from a plain-JSON v2 answer; raises UpstreamMalformed."""
    return decode_infer_response(body, None)


def decode_infer_response(
    body: bytes, header_length: int | None
) -> tuple[dict[str, Any], str | None]:
    """(outputs, model_version) from a v2 answer, binary data included; raises UpstreamMalformed.

    An output of shape [1] (or []) becomes a scalar, any other a flat list; BYTES become str.
    """
    try:
        header, tail = split_body(body, header_length)
        response = RESPONSE.decode(header)
        outputs: dict[str, Any] = {}
        for tensor, values in _tensors(response.outputs, tail, "output"):
            if tensor.datatype == "BYTES":
                values = _texts(values)
            scalar = len(tensor.shape) <= 1 and len(values) == 1
            outputs[tensor.name] = values[0] if scalar else values
    except (msgspec.DecodeError, RecursionError, V2Malformed, UnicodeDecodeError) as exc:
        raise UpstreamMalformed(f"not a valid v2 inference response: {exc}") from None
    return outputs, response.model_version
