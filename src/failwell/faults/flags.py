"""Feature flags that switch a tier or a backend off and on, persisted to a JSON file.

A flag is named by its target:

    tier:ROUTE/TIER     one tier of one route; the chain skips it while it is off
    backend:NAME        a backend; every model tier it serves is skipped while it is off

Flags are on unless switched off. Every change is written to the file at once (write to a
temporary file, then rename), so a restarted gateway comes back with the same flags.

    flags = Flags(Path(".failwell/flags.json"))
    flags.set("backend:ranker", False)
    flags.enabled("backend:ranker")      # False
    flags.on_change(lambda target, on: ...)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KINDS = ("tier", "backend")
FlagListener = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True)
class FlagTarget:
    kind: str  # "tier" or "backend"
    name: str  # "ROUTE/TIER" or "NAME"

    @classmethod
    def parse(cls, text: str) -> FlagTarget:
        """``tier:ROUTE/TIER`` or ``backend:NAME``; ValueError says what is wrong."""
        kind, sep, name = text.partition(":")
        if not sep or kind not in KINDS or not name:
            raise ValueError(f"expected tier:ROUTE/TIER or backend:NAME, got {text!r}")
        if kind == "tier" and name.count("/") != 1:
            raise ValueError(f"a tier flag names ROUTE/TIER, got {text!r}")
        return cls(kind, name)

    @classmethod
    def tier(cls, route: str, tier: str) -> FlagTarget:
        return cls("tier", f"{route}/{tier}")

    @classmethod
    def backend(cls, name: str) -> FlagTarget:
        return cls("backend", name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class Flags:
    """The on/off state of tiers and backends; ``path`` None keeps it in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._off: set[str] = set()
        self._listeners: list[FlagListener] = []
        if path is not None and path.exists():
            self._off = set(self._read(path))

    @staticmethod
    def _read(path: Path) -> list[str]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read flags from {path}: {exc}") from None
        off = data.get("off", []) if isinstance(data, dict) else None
        if not isinstance(off, list) or not all(isinstance(t, str) for t in off):
            raise ValueError(f'{path}: expected {{"off": [targets]}}')
        for target in off:
            FlagTarget.parse(target)
        return off

    @property
    def any_off(self) -> bool:
        return bool(self._off)

    def enabled(self, target: FlagTarget | str) -> bool:
        return not self._off or str(target) not in self._off

    def set(self, target: FlagTarget | str, on: bool) -> bool:
        """Switch ``target`` on or off; True if that changed anything."""
        key = str(FlagTarget.parse(str(target)))
        if (key not in self._off) == on:
            return False
        if on:
            self._off.discard(key)
        else:
            self._off.add(key)
        self._save()
        for listener in self._listeners:
            listener(key, on)
        return True

    def off(self) -> list[str]:
        """The targets switched off now, sorted."""
        return sorted(self._off)

    def on_change(self, listener: FlagListener) -> None:
        self._listeners.append(listener)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"off": self.off()}, indent=1) + "\n")
        os.replace(tmp, self.path)
