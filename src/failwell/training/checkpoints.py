"""Checkpoints of a training job in the registry's stores, so they are replicated like models:
``checkpoints/NAME/JOB/step-000000123`` holds the state, ``checkpoints/NAME/JOB/latest`` names
the newest (written after it, so a crash between the two leaves the previous one in force).
A read falls back to the replicas when the primary has no usable copy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from failwell.registry.stores import Store


@dataclass(frozen=True)
class Checkpoint:
    step: int
    state: bytes


class Checkpoints:
    def __init__(self, stores: Sequence[Store], model: str, job: str) -> None:
        self.stores = list(stores)
        self.prefix = f"checkpoints/{model}/{job}"

    def save(self, step: int, state: bytes) -> None:
        key = f"{self.prefix}/step-{step:09d}"
        pointer = json.dumps(
            {"step": step, "key": key, "sha256": hashlib.sha256(state).hexdigest()}
        ).encode()
        for store in self.stores:
            store.write(key, state)
            store.write(f"{self.prefix}/latest", pointer)

    def latest(self) -> Checkpoint | None:
        for store in self.stores:
            raw = store.read(f"{self.prefix}/latest")
            if raw is None:
                continue
            pointer = json.loads(raw)
            state = store.read(pointer["key"])
            if state is not None and hashlib.sha256(state).hexdigest() == pointer["sha256"]:
                return Checkpoint(int(pointer["step"]), state)
        return None

    def clear(self) -> None:
        for store in self.stores:
            for key in store.keys(f"{self.prefix}/"):
                store.delete(key)
