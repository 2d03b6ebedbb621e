"""The members of a managed backend: each replica's record, what the supervisor needs of the
gateway (``Hooks``), and the port check."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failwell.config.backends import BackendConfig
from failwell.contracts import Adapter
from failwell.routing.pool import Replica
from failwell.supervisor.process import ReplicaProcess

STATES = ("starting", "standby", "serving", "leaving")


@dataclass(frozen=True)
class Hooks:
    """What the supervisor needs of the gateway, injected by the composition root."""

    make_replica: Callable[[str, BackendConfig, str, str], Replica]
    deep_check: Callable[[str, Adapter], Awaitable[str | None]]  # why it fails, or None
    changed: Callable[[], None]  # a pool's membership changed (the health board follows)
    notify: Callable[[dict[str, Any]], None]  # the alert path
    audit: Callable[[str, dict[str, Any]], None]


@dataclass(eq=False)
class Managed:
    port: int
    argv: tuple[str, ...]
    process: ReplicaProcess
    replica: Replica
    state: str
    since: float
    failures: int = 0  # consecutive failed liveness probes
    task: asyncio.Task[None] | None = None

    def as_json(self, now: float, log_path: Path) -> dict[str, Any]:
        return {
            "name": self.replica.label,
            "port": self.port,
            "pid": self.process.pid,
            "state": self.state,
            "for_s": round(now - self.since, 3),
            "adopted": self.process.adopted,
            "outstanding": self.replica.outstanding,
            "log": str(log_path),
        }


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
