"""A tensor model for the demo model server: batches of FP32 images in, one score per row out,
over plain JSON or Triton's binary tensor data, read here with numpy alone (not with the
gateway's codec, so a test that compares both sides compares two readers).

    input  image  FP32 [-1, 3, -1, -1]     a batch of images, any size
    output score  FP32 [-1, 1]             each image's mean

It remembers the SHA-256 of each input tensor's bytes as it received them (little-endian
elements), so a test can check that what the client sent is what the model saw.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import numpy as np

_DTYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4"}
_encode = msgspec.json.Encoder().encode


class ScorerModel:
    """Scores each image of a batch with its mean."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = "scorer-1"
        self.received: dict[str, str] = {}  # input name → SHA-256 of its bytes
        self.shapes: dict[str, list[int]] = {}
        self.datatypes: dict[str, str] = {}

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "failwell-demo-numpy",
            "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, -1, -1]}],
            "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1, 1]}],
        }

    def answer(self, body: bytes, header_length: int | None) -> tuple[bytes, int | None]:
        """The response body to a v2 request, and its header's length when binary data
        follows; raises ValueError for a request it cannot take."""
        head = body if header_length is None else body[:header_length]
        request = msgspec.json.decode(head)
        pos = len(head)
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for tensor in request["inputs"]:
            name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
            if datatype not in _DTYPES:
                raise ValueError(f"input {name!r}: datatype {datatype} is not supported")
            size = (tensor.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                raw = body[pos : pos + size]
                pos += size
            else:
                raw = np.asarray(tensor["data"], dtype=_DTYPES[datatype]).tobytes()
            self.received[name] = hashlib.sha256(raw).hexdigest()
            self.shapes[name], self.datatypes[name] = list(shape), datatype
            arrays[name] = np.frombuffer(raw, dtype=_DTYPES[datatype]).reshape(shape)
        image = arrays.get("image")
        if image is None or image.ndim != 4 or image.shape[1] != 3:
            raise ValueError("input 'image' must be a [-1, 3, H, W] batch")
        score = image.reshape(image.shape[0], -1).mean(axis=1, keepdims=True, dtype=np.float64)
        score = score.astype("<f4")
        binary = (request.get("parameters") or {}).get("binary_data_output", False)
        for output in request.get("outputs") or ():
            binary = (output.get("parameters") or {}).get("binary_data", binary)
        out: dict[str, Any] = {"name": "score", "datatype": "FP32", "shape": list(score.shape)}
        answer: dict[str, Any] = {"model_name": self.name, "model_version": self.version}
        if request.get("id") is not None:
            answer["id"] = request["id"]
        answer["outputs"] = [out]
        if not binary:
            out["data"] = score.ravel().tolist()
            return _encode(answer), None
        blob = score.tobytes()
        out["parameters"] = {"binary_data_size": len(blob)}
        header = _encode(answer)
        return header + blob, len(header)

    def state(self) -> dict[str, Any]:
        return {"received": self.received, "shapes": self.shapes, "datatypes": self.datatypes}
