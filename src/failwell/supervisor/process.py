"""One replica's process: spawned by this gateway, or adopted from a previous run of it.

A replica runs in its own session (process group), so a stop reaches whatever it started, and
a gateway killed with SIGKILL does not take it down: the next run adopts it (same command,
same port, the same process by its start time, so a reused pid is never mistaken for it) or
stops it. Its stdout and stderr go straight to a log file, not to a pipe, for the same reason:
the output keeps being captured with no gateway reading it.

``demo/procs.py`` (ManagedProcess) is not reused here: it reads the output through a pipe
(which dies with the gateway), waits by blocking, and lives in the demo layer above this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_POLL = 0.02


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); None when it is gone or a
    zombie. With the pid it names one process for as long as the machine runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] == "Z":
        return None
    return int(fields[19])  # field 22 of proc(5)


class ReplicaProcess:
    def __init__(self, pid: int, started: int, popen: subprocess.Popen[bytes] | None) -> None:
        self.pid, self.started, self._popen = pid, started, popen

    def __repr__(self) -> str:
        return f"<ReplicaProcess pid={self.pid} alive={self.alive()}>"

    @classmethod
    def spawn(cls, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> ReplicaProcess:
        """Start ``argv`` in a new session, its output appended to ``log``. OSError when the
        command cannot run."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        started = start_time(popen.pid)
        return cls(popen.pid, started if started is not None else -1, popen)

    @classmethod
    def adopt(cls, pid: int, started: int) -> ReplicaProcess | None:
        """The process a previous run started, if it still runs (None when it is gone)."""
        if start_time(pid) != started:
            return None
        return cls(pid, started, None)

    @property
    def adopted(self) -> bool:
        return self._popen is None

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return start_time(self.pid) == self.started

    def exit_code(self) -> int | None:
        """The exit code of a process this run spawned (negative: the signal that killed it)."""
        return None if self._popen is None else self._popen.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the replica's process group (nothing once it is gone)."""
        if self.alive():
            self._signal_group(sig)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def _exited(self, within: float) -> bool:
        loop = asyncio.get_running_loop()
        ends = loop.time() + within
        while self.alive():
            if loop.time() >= ends:
                return False
            await asyncio.sleep(_POLL)
        return True

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; then the rest of its group."""
        if self.alive():
            self.signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.signal(signal.SIGTERM)
            if not await self._exited(grace):
                self.signal(signal.SIGKILL)
                await self._exited(5.0)
        if self._popen is not None:
            # Whatever it started in its group. The leader was reaped by this process and the
            # group id stays reserved while any member lives, so this reaches no other process.
            self._signal_group(signal.SIGKILL)
