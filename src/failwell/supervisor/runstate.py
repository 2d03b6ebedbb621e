"""What a run leaves for the next one: each managed backend's live replicas (port, pid, start
time, command) in ``<log_dir>/<backend>.replicas.json``, rewritten (atomically) on every start
and stop, so a gateway killed with SIGKILL is followed by one that adopts them or stops them."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Recorded:
    port: int
    pid: int
    started: int
    argv: tuple[str, ...]


def state_file(log_dir: str, backend: str) -> Path:
    return Path(log_dir) / f"{backend}.replicas.json"


def read(path: Path) -> list[Recorded]:
    """The replicas recorded in ``path`` (none when it is missing or unreadable)."""
    try:
        rows = json.loads(path.read_text())["replicas"]
        return [
            Recorded(int(r["port"]), int(r["pid"]), int(r["started"]), tuple(r["argv"]))
            for r in rows
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write(path: Path, replicas: list[Recorded]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"replicas": [asdict(r) for r in replicas]}))
    os.replace(tmp, path)


def clear(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
