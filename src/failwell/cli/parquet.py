"""Parquet export of log records (pyarrow). Nested values (inputs, outputs, detail) are stored
as JSON text columns so records of any route fit one schema."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import typer

_encode = msgspec.json.Encoder().encode
_NESTED = ("inputs", "outputs", "fallbacks", "detail")
_BATCH = 10_000
_COMMON = (("seq", "int64"), ("prev", "string"), ("time", "float64"))
INFERENCE_COLUMNS = (
    *_COMMON,
    *((k, "string") for k in ("request_id", "route", "front_end", "caller")),
    ("status", "int64"),
    *((k, "string") for k in ("outcome", "error", "input_policy", "inputs", "input_sha256")),
    *((k, "string") for k in ("outputs", "tier")),
    ("tier_index", "int64"),
    *((k, "string") for k in ("quality", "backend", "replica", "model_version")),
    ("latency_ms", "float64"),
    ("fallbacks", "string"),
)
AUDIT_COLUMNS = (*_COMMON, ("action", "string"), ("detail", "string"), ("caller", "string"))


def _row(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (_encode(v).decode() if k in _NESTED and v is not None else v) for k, v in fields.items()
    }


def write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> int:
    try:  # an optional part: `pip install 'failwell[parquet]'`
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise typer.BadParameter(
            "parquet export needs pyarrow: pip install 'failwell[parquet]'", param_hint="--format"
        ) from None

    n = 0
    writer: Any = None
    schema: Any = None
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer, schema
        if not batch:
            return
        if schema is None:
            columns = AUDIT_COLUMNS if "action" in batch[0] else INFERENCE_COLUMNS
            schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in columns])
            writer = pq.ParquetWriter(str(path), schema)
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        batch.clear()

    try:
        for fields in rows:
            batch.append(_row(fields))
            n += 1
            if len(batch) >= _BATCH:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        empty = pa.schema([(name, getattr(pa, kind)()) for name, kind in INFERENCE_COLUMNS])
        pq.write_table(empty.empty_table(), str(path))
    return n
