"""Tiny in-process models and rules for tests and examples."""

from __future__ import annotations

import time
from typing import Any


class Echo:
    """Returns its inputs; ``delay`` seconds per call, ``fail`` to raise."""

    version = "echo-1"

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("echo model told to fail")
        return {"echo": inputs}


def constant_rule(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"items": [7, 8, 9]}


def broken_rule(inputs: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("this rule is broken on purpose")


class Tunable:
    """A registry-loadable model whose behaviour lives in its artifact: ``tunable.json`` in
    ``model_dir`` with ``offset`` (shifts every score), ``fail_rate`` (share of calls that
    raise), ``delay`` (seconds per call). Scores ``{"score": 2 * x + offset}``."""

    def __init__(self, model_dir: str) -> None:
        import json
        import random
        from pathlib import Path

        spec = json.loads((Path(model_dir) / "tunable.json").read_text())
        self.offset = float(spec.get("offset", 0.0))
        self.fail_rate = float(spec.get("fail_rate", 0.0))
        self.delay = float(spec.get("delay", 0.0))
        self._random = random.Random(spec.get("seed", 0))

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.fail_rate and self._random.random() < self.fail_rate:
            raise RuntimeError("tunable model told to fail")
        return {"score": 2 * float(inputs["x"]) + self.offset}


class RowSums:
    """A tensor model: each row of the first input summed, as ``score`` FP32 ``[rows, 1]``;
    ``fail`` to raise."""

    version = "rowsums-1"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        if self.fail:
            raise RuntimeError("rowsums model told to fail")
        batch = next(iter(inputs.values()))
        rows = batch.reshape(batch.shape[0], -1).astype(np.float32)
        return {"score": rows.sum(axis=1, keepdims=True)}


def row_count_rule(inputs: dict[str, Any]) -> dict[str, Any]:
    """A tensor rules function: per row of the batch, its element count as ``score``."""
    batch = next(iter(inputs.values()))
    per_row = batch[0].size if len(batch) else 0
    return {"score": [[float(per_row)] for _ in range(len(batch))]}


def positive_rows_rule(inputs: dict[str, Any]) -> list[Any]:
    """A tensor rules function that answers only some rows (for ``fallback: rows``): a row
    whose first element is positive gets its element count as ``score``; the others ``None``."""
    batch = next(iter(inputs.values()))
    return [{"score": [float(row.size)]} if row.ravel()[0] > 0 else None for row in batch]
