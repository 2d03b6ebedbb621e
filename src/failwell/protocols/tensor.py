"""A tensor as it travels a tensor route: its name, V2 datatype, shape and raw bytes.

The bytes are the V2 wire form (little-endian elements back to back; for BYTES, each element
a 4-byte little-endian length and then its bytes), so a tensor that arrived in Triton's binary
extension goes on as the very bytes the client sent, usually a view into the request body.
numpy arrays are made only where a tier needs to look at the values (``Tensor.array`` is a
zero-copy view for fixed-size datatypes).

``Tensors`` is a name → ``Tensor`` mapping: what a tensor route's request carries instead of
fields, and what its tiers answer. Its ``rows`` is the batch: the first dimension of its first
tensor.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from failwell.config.tensors import Datatype
from failwell.protocols.v2binary import V2Malformed, elements, pack_bytes, unpack_bytes

_DATATYPES = frozenset(d.value for d in Datatype)
# Floating-point datatypes: packing their elements cannot fail, so it waits for a use.
FLOATS = frozenset(("FP16", "FP32", "FP64"))
# numpy's (kind, itemsize) of an array → its V2 datatype
_FROM_NUMPY: dict[tuple[str, int], Datatype] = {
    (np.dtype(d.numpy).kind, np.dtype(d.numpy).itemsize): d
    for d in Datatype
    if d is not Datatype.BYTES
}


@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str  # a Datatype value
    shape: tuple[int, ...]
    _data: bytes | memoryview | None  # the wire bytes; None until ``data`` packs ``_values``
    binary: bool = True  # it came as binary data (and goes on so where the upstream allows)
    text: msgspec.Raw | None = None  # the JSON "data" it came with, passed on as JSON unparsed
    # JSON elements (checked), packed on first use of data; None with ``text`` alone: its
    # elements were counted, not parsed (``v2text``), and are parsed on first use of data
    _values: list[Any] | None = None
    _parts: tuple[memoryview, ...] = ()  # binary data spanning parts of the body, joined on use

    @property
    def data(self) -> bytes | memoryview:
        """The wire bytes, in one piece. A JSON tensor's elements are parsed and packed, and
        binary data that arrived in several parts joined, only when something needs them so
        (an array, a digest, a binary upstream): passed on as they came, they never are."""
        if self._data is None:
            if self._parts:
                self._data = b"".join(self._parts)
                self._parts = ()
            else:
                values = self._values
                if values is None and self.text is not None:
                    values = elements(self.datatype, list(self.shape), self.text, None)
                self._data = _pack(self.name, self.datatype, values or [])
                self._values = None
        return self._data

    def parts(self) -> tuple[bytes | memoryview, ...]:
        """The wire bytes as pieces to write one after the other (not joined)."""
        return self._parts or (self.data,)

    @property
    def nbytes(self) -> int:
        return sum(len(part) for part in self._parts) if self._parts else len(self.data)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def array(self) -> np.ndarray[Any, Any]:
        """The elements as a numpy array of the tensor's shape: a read-only view of the bytes
        for fixed-size datatypes; for BYTES, an object array of ``bytes``."""
        if self.datatype == "BYTES":
            out = np.empty(self.count, dtype=object)
            out[:] = unpack_bytes(self.data, self.count)
            return out.reshape(self.shape)
        return np.frombuffer(self.data, dtype=Datatype(self.datatype).numpy).reshape(self.shape)

    def elements(self) -> list[Any]:
        """The flat elements as JSON values (BYTES as text; raises UnicodeDecodeError)."""
        if self.datatype == "BYTES":
            return [e.decode() for e in unpack_bytes(self.data, self.count)]
        flat: list[Any] = self.array().ravel().tolist()
        return flat

    def nested(self) -> Any:
        """The elements as nested lists of the tensor's shape (BYTES as text)."""
        if self.datatype == "BYTES":
            return np.array(self.elements(), dtype=object).reshape(self.shape).tolist()
        return self.array().tolist()

    def hash_into(self, digest: Any) -> None:
        digest.update(f"{self.name}\x1f{self.datatype}\x1f{self.shape}\x1f".encode())
        digest.update(self.data)


class Tensors(dict[str, Tensor]):
    """A request's or an answer's tensors, by name."""

    @property
    def rows(self) -> int:
        """The batch: the first dimension of the first tensor (1 for a scalar or none)."""
        for tensor in self.values():
            return tensor.rows
        return 1

    @property
    def binary(self) -> bool:
        """Whether any tensor came as binary data."""
        return any(t.binary for t in self.values())

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        return {name: tensor.array() for name, tensor in self.items()}

    def digest(self) -> str:
        """SHA-256 over every tensor's name, datatype, shape and bytes."""
        h = hashlib.sha256()
        for name in sorted(self):
            self[name].hash_into(h)
        return h.hexdigest()


def check_datatype(datatype: str) -> None:
    """Raise V2Malformed for a datatype a tensor route does not take."""
    if datatype not in _DATATYPES:
        raise V2Malformed(f"unknown datatype {datatype!r}")


def from_wire(
    name: str, datatype: str, shape: tuple[int, ...], raw: tuple[memoryview, ...], count: int
) -> Tensor:
    """A tensor over binary data (views of the body, in one or more parts), checked against
    its datatype and element count."""
    size = sum(len(view) for view in raw)
    if datatype == "BYTES":
        unpack_bytes(raw[0] if len(raw) == 1 else b"".join(raw), count)
    elif size != count * Datatype(datatype).itemsize:
        raise V2Malformed(
            f"has {size} bytes of binary data, but {count} {datatype} elements take "
            f"{count * Datatype(datatype).itemsize}"
        )
    if len(raw) == 1:
        return Tensor(name, datatype, shape, raw[0], True)
    return Tensor(name, datatype, shape, None, True, None, None, raw)


def tensor_of(name: str, value: Any, datatype: str | None = None, *, binary: bool = True) -> Tensor:
    """A tensor holding ``value`` (a numpy array, nested lists, a scalar, or a Tensor), in
    ``datatype`` when given, else the one its numpy dtype maps to (text and bytes: BYTES).
    Raises ValueError (and numpy's OverflowError) when the value does not fit."""
    if isinstance(value, Tensor):
        if datatype is not None and value.datatype != datatype:
            value = tensor_of(name, value.array(), datatype, binary=value.binary)
        return Tensor(name, value.datatype, value.shape, value.data, value.binary)
    if datatype == "BYTES" or (datatype is None and _is_text(value)):
        array = np.asarray(value, dtype=object)
        return Tensor(name, "BYTES", array.shape, pack_bytes(array.ravel()), binary)
    array = np.asarray(value, dtype=None if datatype is None else Datatype(datatype).numpy)
    found = _FROM_NUMPY.get((array.dtype.kind, array.dtype.itemsize))
    if found is None:
        raise ValueError(f"{name!r}: a {array.dtype} array has no V2 datatype")
    little = np.ascontiguousarray(array, dtype=found.numpy)
    return Tensor(name, found.value, little.shape, little.tobytes(), binary)


def _pack(name: str, datatype: str, values: list[Any]) -> bytes:
    data = tensor_of(name, values, datatype).data
    return data if isinstance(data, bytes) else bytes(data)


def json_tensor(
    name: str, datatype: str, shape: tuple[int, ...], values: list[Any], text: Any
) -> Tensor:
    """A tensor that came as JSON ``data`` (``text``) whose flat ``values`` were checked
    against its datatype and shape. Floating-point elements are packed lazily (packing them
    cannot fail); other datatypes at once, so a value that does not fit raises here
    (ValueError, OverflowError)."""
    if datatype in FLOATS:
        return Tensor(name, datatype, shape, None, False, text, values)
    return Tensor(name, datatype, shape, _pack(name, datatype, values), False, text)


def _is_text(value: Any) -> bool:
    if isinstance(value, str | bytes):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "OSU"
    if isinstance(value, list | tuple):
        first: Any = value
        while isinstance(first, list | tuple) and first:
            first = first[0]
        return isinstance(first, str | bytes)
    return False


def restore(name: str, value: Any) -> Tensor:
    """A tensor back from its JSON form in the answer cache, or from any value ``tensor_of``
    takes. The cache's JSON form is a ``Tensor`` as msgspec encodes the dataclass (the answer
    cache's SQLite file, the fleet's Redis): its fields, bytes in base64 (``_data``, or the
    ``_parts`` of binary data not yet joined), or the JSON elements it came with (``_values``,
    or the unparsed ``text``) when it was never packed; ``data`` in base64 is read too."""
    if isinstance(value, Mapping) and {"datatype", "shape"} <= value.keys():
        datatype, shape = str(value["datatype"]), tuple(value["shape"])
        if value.get("data") is not None or value.get("_data") is not None:
            data = value["data"] if value.get("data") is not None else value["_data"]
            raw = base64.b64decode(data) if isinstance(data, str) else bytes(data)
            return Tensor(name, datatype, shape, raw, True)
        if value.get("_parts"):
            raw = b"".join(base64.b64decode(part) for part in value["_parts"])
            return Tensor(name, datatype, shape, raw, True)
        elements = value.get("_values")
        if elements is None:
            elements = value.get("text")
        if elements is not None:
            flat = np.asarray(elements, dtype=object).ravel().tolist()
            return Tensor(name, datatype, shape, _pack(name, datatype, flat), False)
    return tensor_of(name, value)
