"""Tensor data for the v2 codec: datatypes, Triton's binary tensor data, flat element lists.

A v2 tensor carries its elements either as JSON ``data`` (a flat or row-major nested array)
or, under Triton's binary tensor data extension (triton-inference-server/server,
docs/protocol/extension_binary_data.md), as raw bytes after the message's JSON header. The
header's length travels in the ``Inference-Header-Content-Length`` HTTP header; each tensor
sent this way names its byte count in ``parameters.binary_data_size``, and the tensors'
bytes follow the header back to back, in the order the tensors are listed. Fixed-size
elements are little-endian; a BYTES element is a 4-byte little-endian length and then that
many bytes.

Everything here raises :class:`V2Malformed`; ``failwell.protocols.v2codec`` translates it into
the error tree (``InvalidInput`` for a caller's request, ``UpstreamMalformed`` for an
upstream's answer), so it never leaves the codec.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Raw

_LENGTH = struct.Struct("<I")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1

# struct format character of each fixed-size datatype (BF16 is unpacked through "H").
_FORMATS: dict[str, str] = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
    "BF16": "H",
}


def _ints(datatype: str) -> Any:
    bits = struct.calcsize(_FORMATS[datatype]) * 8
    if datatype == "UINT64":  # msgspec bounds must fit an int64: elements() checks the top
        return list[Annotated[int, Meta(ge=0)]]
    if datatype.startswith("U"):
        return list[Annotated[int, Meta(ge=0, le=2**bits - 1)]]
    return list[Annotated[int, Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)]]


INT_TYPES = frozenset(("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"))
FLOAT_TYPES = frozenset(("FP16", "FP32", "FP64", "BF16"))
# How each datatype's elements look in JSON, as the msgspec type of a flat data list.
_JSON_ELEMENTS: dict[str, Any] = {
    "BOOL": list[bool],
    "BYTES": list[str],
    **{name: _ints(name) for name in INT_TYPES},
    **{name: list[float] for name in FLOAT_TYPES},
}


_JSON_DECODERS: dict[str, msgspec.json.Decoder[list[Any]]] = {
    datatype: msgspec.json.Decoder(element_type)
    for datatype, element_type in _JSON_ELEMENTS.items()
}
_ANY_JSON = msgspec.json.Decoder()


class V2Malformed(ValueError):
    """A v2 message that is not well-formed; ``tensor`` names the tensor at fault, if one is."""

    def __init__(self, message: str, tensor: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tensor = tensor


# --- reading --------------------------------------------------------------------------------


def elements(datatype: str, shape: list[int], data: Raw, chunk: memoryview | None) -> list[Any]:
    """A tensor's flat elements from its JSON data or its binary chunk, checked against its
    datatype and shape. BYTES elements are str from JSON and bytes from binary data."""
    decoder = _JSON_DECODERS.get(datatype)
    if decoder is None:
        raise V2Malformed(f"unknown datatype {datatype!r}")
    count = element_count(shape)
    if chunk is not None:
        if len(data):
            raise V2Malformed("has both data and parameters.binary_data_size")
        return _unpack(datatype, chunk, count)
    if not len(data):
        raise V2Malformed("has neither data nor binary data (shared memory is not supported)")
    try:  # the common case, a flat list of the datatype's elements, in one call
        values = decoder.decode(data)
    except msgspec.ValidationError:  # nested arrays, a bare element, or wrong elements
        values = _json_elements(data, decoder)
    if datatype == "UINT64" and values and max(values) > _UINT64_MAX:
        raise V2Malformed(f"data does not fit UINT64: {max(values)}")
    if len(values) != count:
        check_count(len(values), count)
    return values


def check_count(found: int, count: int) -> None:
    """Raise V2Malformed unless a tensor's data holds the ``count`` elements of its shape."""
    if found != count:
        raise V2Malformed(f"has {found} elements, but its shape needs {count}")


def element_count(shape: list[int]) -> int:
    """The number of elements of a shape, which no tensor can hold 2**63 of."""
    if len(shape) == 1 and 0 <= shape[0] <= _INT64_MAX:  # a vector: the common case
        return shape[0]
    count = 1
    for size in shape:
        if size < 0:
            raise V2Malformed("its shape has a negative dimension")
        count *= size
        if count > _INT64_MAX:
            raise V2Malformed("its shape has more than 2**63 elements")
    return count


def _json_elements(data: Raw, decoder: msgspec.json.Decoder[list[Any]]) -> list[Any]:
    """The elements of JSON data that is not a flat list of the datatype's elements."""
    try:
        flat = _flatten(_ANY_JSON.decode(data))
        return msgspec.convert(flat, type=decoder.type)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise V2Malformed(f"data does not fit its datatype: {exc}") from None


def _flatten(value: Any) -> list[Any]:
    """Row-major elements of nested JSON arrays (a bare element counts as one)."""
    if type(value) is not list:
        return [value]
    flat: list[Any] = []
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _unpack(datatype: str, raw: memoryview, count: int) -> list[Any]:
    if datatype == "BYTES":
        return unpack_bytes(raw, count)
    fmt = _FORMATS[datatype]
    size = count * struct.calcsize(fmt)
    if len(raw) != size:
        raise V2Malformed(
            f"has {len(raw)} bytes of binary data, but {count} {datatype} elements take {size}"
        )
    values = struct.unpack(f"<{count}{fmt}", raw)
    if datatype == "BF16":  # the upper half of an FP32
        values = struct.unpack(f"<{count}f", struct.pack(f"<{count}I", *(v << 16 for v in values)))
    return list(values)


def unpack_bytes(raw: bytes | memoryview, count: int) -> list[bytes]:
    """The elements of BYTES data: exactly ``count`` length-prefixed ones, or V2Malformed."""
    out: list[bytes] = []
    pos = 0
    end = len(raw)
    while pos < end:
        if len(out) == count:
            raise V2Malformed(f"has more BYTES elements than the {count} of its shape")
        if end - pos < 4:
            raise V2Malformed(f"BYTES element {len(out)}: its 4-byte length is cut off")
        (size,) = _LENGTH.unpack_from(raw, pos)
        pos += 4
        if size > end - pos:
            raise V2Malformed(f"BYTES element {len(out)}: length {size} runs past the data")
        out.append(bytes(raw[pos : pos + size]))
        pos += size
    if len(out) != count:
        raise V2Malformed(f"has {len(out)} BYTES elements, but its shape needs {count}")
    return out


# --- writing --------------------------------------------------------------------------------


def pack_bytes(elements: Iterable[Any]) -> bytes:
    """BYTES data of the elements: bytes as they are, anything else as UTF-8 text."""
    parts: list[bytes] = []
    for element in elements:
        data = element if isinstance(element, bytes) else str(element).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def pack(datatype: str, flat: Sequence[Any]) -> bytes:
    """The raw bytes of a flat list of elements (BYTES elements are str, sent as UTF-8)."""
    if datatype == "BYTES":
        return pack_bytes(flat)
    if datatype == "BF16":
        raise ValueError("packing BF16 is not supported")
    return struct.pack(f"<{len(flat)}{_FORMATS[datatype]}", *flat)


def _enc_hook(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot encode a {type(value).__name__} as a v2 output")


_JSON_TEXT = msgspec.json.Encoder(enc_hook=_enc_hook)
_SCALARS: dict[type, str] = {str: "BYTES", bool: "BOOL", int: "INT64", float: "FP64"}
_INT, _NUMBER, _STR_OR_BOOL = frozenset((int,)), frozenset((int, float)), frozenset((str, bool))


def tensor_of(value: Any) -> tuple[str, list[int], list[Any]]:
    """(datatype, shape, flat elements) for an output value.

    str, int, float and bool become BYTES, INT64, FP64 and BOOL of shape [1]; a flat list of
    one of them (ints mixed with floats: FP64) has shape [n]; rectangular nested lists of
    numbers keep their shape; anything else (dicts, ragged lists, None, ints beyond INT64) is
    BYTES [1] holding its JSON text. numpy arrays and scalars count as what ``tolist`` gives.
    """
    kind = type(value)
    if kind is not list and kind not in _SCALARS and kind is not tuple and kind is not dict:
        tolist = getattr(value, "tolist", None)
        if callable(tolist):
            value = tolist()
            kind = type(value)
    if kind is list or kind is tuple:  # lists first: the common case
        found = _list_tensor(value)
        if found is not None:
            return found
    elif kind is int and not _INT64_MIN <= value <= _INT64_MAX:
        pass
    elif kind in _SCALARS:
        return _SCALARS[kind], [1], [value]
    return "BYTES", [1], [_JSON_TEXT.encode(value).decode()]


def _list_tensor(value: list[Any] | tuple[Any, ...]) -> tuple[str, list[int], list[Any]] | None:
    shape, flat = _rectangle(value)
    if not shape:
        return None
    kinds = set(map(type, flat))  # no comprehension frame
    if kinds == _INT:
        if min(flat) >= _INT64_MIN and max(flat) <= _INT64_MAX:
            return "INT64", shape, flat
    elif kinds <= _NUMBER:  # empty lists too
        try:
            return "FP64", shape, flat if int not in kinds else [float(v) for v in flat]
        except OverflowError:
            return None
    elif len(shape) == 1 and len(kinds) == 1:
        datatype = _SCALARS[kinds.pop()] if kinds <= _STR_OR_BOOL else None
        return None if datatype is None else (datatype, shape, flat)
    return None


def _rectangle(value: list[Any] | tuple[Any, ...]) -> tuple[list[int], list[Any]]:
    """(shape, row-major elements) of nested lists; ([], []) when they are ragged."""
    if not value or (type(value[0]) is not list and type(value[0]) is not tuple):
        return [len(value)], list(value)  # flat: the common case
    shape: list[int] = []
    level: Any = value
    while type(level) is list or type(level) is tuple:
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    rows: list[Any] = [value]
    for size in shape:
        next_rows: list[Any] = []
        for row in rows:
            if (type(row) is not list and type(row) is not tuple) or len(row) != size:
                return [], []
            next_rows.extend(row)
        rows = next_rows
    return shape, rows
