"""The JSON structures of Open Inference Protocol v2 messages, shared by the field codec
(``v2codec``) and the tensor codec (``v2tensors``)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from failwell.protocols.v2binary import V2Malformed

# --- wire structures (decoded: unknown keys are ignored) ---------------------------------


class TensorParams(Struct):
    binary_data_size: int | None = None  # >= 0: checked where the tensor can be named


class WireTensor(Struct):
    name: str
    shape: list[int]  # each >= 0: likewise
    datatype: str
    parameters: TensorParams | None = None
    data: Raw = Raw()  # an empty Raw when the tensor has no "data"


class OutputParams(Struct):
    binary_data: bool | None = None
    classification: int = 0
    shared_memory_region: str | None = None


class RequestedOutput(Struct):
    name: str
    parameters: OutputParams | None = None


class RequestParams(Struct):
    binary_data_output: bool = False


class InferRequest(Struct):
    inputs: list[WireTensor]
    id: str | None = None
    parameters: RequestParams | None = None
    outputs: list[RequestedOutput] | None = None


class InferResponse(Struct):
    outputs: list[WireTensor]
    model_version: str | None = None


# --- wire structures (encoded) --------------------------------------------------------------


class TensorOut(Struct, omit_defaults=True, kw_only=True):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, int] | UnsetType = UNSET
    data: list[Any] | Raw | UnsetType = UNSET  # Raw: JSON data passed on as it came


class RequestOut(Struct, omit_defaults=True, kw_only=True):
    id: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    inputs: list[TensorOut]


class ResponseOut(Struct, omit_defaults=True, kw_only=True):
    model_name: str
    model_version: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    parameters: dict[str, Any]
    outputs: list[TensorOut]


ENCODER = msgspec.json.Encoder()
REQUEST = msgspec.json.Decoder(InferRequest)
RESPONSE = msgspec.json.Decoder(InferResponse)


def output_choices(request: InferRequest) -> tuple[bool, dict[str, bool]]:
    """The default binary flag, and each requested output's own; raises V2Malformed."""
    default = request.parameters.binary_data_output if request.parameters else False
    flags: dict[str, bool] = {}
    for output in request.outputs or ():
        params = output.parameters or OutputParams()
        if output.name in flags:
            raise V2Malformed(f"output {output.name!r} is requested twice", output.name)
        if params.classification or params.shared_memory_region is not None:
            raise V2Malformed(
                f"output {output.name!r}: classification and shared memory are not supported",
                output.name,
            )
        flags[output.name] = default if params.binary_data is None else params.binary_data
    return default, flags
