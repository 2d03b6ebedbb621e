"""What a tensor route declares: each tensor's V2 datatype and shape (``-1``: any size), and
where the specs come from (the config, the model server, or nowhere: pass-through)."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Datatype(enum.StrEnum):
    """The Open Inference Protocol v2 datatypes a tensor route takes."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"

    @property
    def numpy(self) -> str:
        """The little-endian numpy dtype of one element (``object`` for BYTES)."""
        return _NUMPY[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element on the wire; 0 for BYTES, whose elements carry their length."""
        return _ITEMSIZE[self]


_NUMPY = {
    Datatype.BOOL: "|b1",
    Datatype.UINT8: "|u1",
    Datatype.UINT16: "<u2",
    Datatype.UINT32: "<u4",
    Datatype.UINT64: "<u8",
    Datatype.INT8: "|i1",
    Datatype.INT16: "<i2",
    Datatype.INT32: "<i4",
    Datatype.INT64: "<i8",
    Datatype.FP16: "<f2",
    Datatype.FP32: "<f4",
    Datatype.FP64: "<f8",
    Datatype.BYTES: "O",
}
_ITEMSIZE = {d: (0 if d is Datatype.BYTES else int(_NUMPY[d][2:])) for d in Datatype}


class SchemaSource(enum.StrEnum):
    """Where a tensor route's input specs come from."""

    DECLARED = "declared"  # the route's ``input``
    SERVER = "server"  # tier 1's GET /v2/models/{model}, checked against ``input`` if given
    PASSTHROUGH = "passthrough"  # none: any well-formed tensors go through


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    datatype: Datatype = Field(
        description="V2 datatype: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES."
    )
    shape: tuple[int, ...] = Field(
        description="Dimensions; -1 for a variable one (the batch dimension first)."
    )

    @field_validator("shape")
    @classmethod
    def _shape(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < -1 for d in value):
            raise ValueError("a dimension is a size >= 0, or -1 for a variable one")
        return value

    def describe(self) -> str:
        return f"{self.datatype.value} {list(self.shape)}"


class TensorWire(enum.StrEnum):
    """How a V2 backend's requests carry a tensor route's tensors."""

    MIRROR = "mirror"  # as each tensor came from the client: binary stays binary, JSON JSON
    BINARY = "binary"  # always Triton's binary tensor data extension
    JSON = "json"  # always JSON ``data`` (for servers without the binary extension: MLServer)


class TensorsConfig(BaseModel):
    """A tensor route's tensors (the route takes these instead of ``input`` fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: SchemaSource | None = Field(
        None,
        description="declared (the inputs below), server (tier 1's GET /v2/models/{model}, which must agree with any inputs below) or passthrough (any well-formed tensors); default: declared when inputs are given, else server.",
    )
    inputs: dict[str, TensorSpec] = Field(
        default_factory=dict, description="Input tensor name → datatype and shape."
    )
    outputs: dict[str, TensorSpec] = Field(
        default_factory=dict,
        description="Output tensor name → datatype and shape: rules and static answers are cast to the datatype, and rules, cache and static answers are checked against the shape (a model's answer passes as it is); from the server with source: server.",
    )

    @property
    def origin(self) -> SchemaSource:
        """Where the input specs come from."""
        if self.source is not None:
            return self.source
        return SchemaSource.DECLARED if self.inputs else SchemaSource.SERVER

    @model_validator(mode="after")
    def _consistent(self) -> TensorsConfig:
        if self.source is SchemaSource.DECLARED and not self.inputs:
            raise ValueError("source: declared needs 'inputs'")
        if self.source is SchemaSource.PASSTHROUGH and (self.inputs or self.outputs):
            raise ValueError("source: passthrough takes no 'inputs' or 'outputs'")
        return self
