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
