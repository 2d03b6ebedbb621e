"""``failwell serve --workers N``: a supervising parent and N worker processes on one port.

The parent binds the listening socket once and forks the workers; each inherits it and runs a
whole gateway (data plane, admin, metrics) under uvicorn. One socket shared by all, not a
socket per worker with SO_REUSEPORT: a connection waiting in the accept queue of a worker that
dies would be reset with SO_REUSEPORT, while in one shared queue another worker takes it. The
parent runs no event loop and no thread; it only:

- restarts a worker that exits while the gateway runs (same slot, after a short backoff that
  grows while a slot keeps crashing);
- forwards SIGHUP (reload) to every worker, and SIGTERM/SIGINT as SIGTERM: each worker drains
  (uvicorn's graceful shutdown, then the gateway's close: the log flushed) and the parent
  waits for all, SIGKILLing those still there after ``STOP_TIMEOUT``.

Workers share truth through the fleet's Redis (``fleet:`` in the config), which N workers need:
breakers, flags, faults and the answer cache are shared there, and the control loops run in the
one worker holding the fleet's lease (``fleet/lease.py``). ``worker_count`` refuses what N
workers cannot do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from failwell.config.log import LogBackend
from failwell.config.models import FailwellConfig
from failwell.errors import ConfigError, ConfigIssue
from failwell.observe.logging import log

STOP_TIMEOUT = 40.0  # a worker's drain (30 s) and close
STARTUP_FAILURE = 3  # a worker's exit code when its gateway could not start (as uvicorn's)
BACKOFF, MAX_BACKOFF = 0.2, 10.0
STABLE = 30.0  # a worker that ran this long starts its slot's backoff again
_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def worker_count(config: FailwellConfig, requested: int | None) -> int:
    """The number of workers to run: ``requested``, or one per core when the config shares
    state through Redis (``fleet``), else one. A ConfigError says why N workers cannot run."""
    if requested is None:
        return (os.cpu_count() or 1) if config.fleet is not None else 1
    if requested < 1:
        raise ConfigError([ConfigIssue("--workers", "expected at least 1")])
    if requested == 1:
        return 1
    issues = []
    if config.fleet is None:
        issues.append(
            ConfigIssue(
                "fleet",
                f"--workers {requested} needs a fleet section (fleet.redis): the workers share "
                "breakers, flags, faults, the answer cache and one control loop through Redis; "
                "or run --workers 1",
            )
        )
    if config.log.enabled and config.log.backend is LogBackend.SEGMENTS:
        issues.append(
            ConfigIssue(
                "log.backend",
                f"--workers {requested} would write one segment log from many processes; use "
                "log.backend: redis (one chain for all workers) or --workers 1",
            )
        )
    for name, backend in config.backends.items():
        if backend.managed is not None:
            issues.append(
                ConfigIssue(
                    f"backends.{name}.managed",
                    f"--workers {requested}: each worker would start its own managed replicas; "
                    "run the model servers apart or --workers 1",
                )
            )
    if issues:
        raise ConfigError(issues)
    return requested


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket every worker shares (bound here, so a port in use fails early)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        issue = ConfigIssue("gateway.listen", f"cannot listen on {host}:{port}: {exc.strerror}")
        raise ConfigError([issue]) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.set_inheritable(True)
    return sock


@dataclass
class Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    backoff: float = BACKOFF
    due: float = 0.0  # when to start it again (monotonic; 0: running)
    launches: int = 0


class WorkerParent:
    """Forks ``count`` workers running ``work(index, sock)`` and keeps them running."""

    def __init__(
        self, count: int, sock: socket.socket, work: Callable[[int, socket.socket], int]
    ) -> None:
        self.sock, self.work = sock, work
        self.slots = [Slot(i) for i in range(count)]
        self.stopping = False
        self.code = 0  # the parent's exit code

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for slot in self.slots:
                self._spawn(slot)
            while not self.stopping:
                self._reap()
                self._respawn_due()
                info = signal.sigtimedwait(_SIGNALS, self._wait())
                if info is None or info.si_signo == signal.SIGCHLD:
                    continue
                if info.si_signo == signal.SIGHUP:
                    self._signal_all(signal.SIGHUP)
                    log.info("workers_reload", workers=len(self.slots))
                else:
                    self.stopping = True
            return self._stop()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _wait(self) -> float:
        due = [s.due for s in self.slots if s.due]
        return max(0.01, min(due) - time.monotonic()) if due else 1.0

    def _spawn(self, slot: Slot) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: signals as a fresh process has them
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
                code = self.work(slot.index, self.sock)
            finally:
                os._exit(code)
        slot.pid, slot.started, slot.due = pid, time.monotonic(), 0.0
        slot.launches += 1
        log.info("worker_started", worker=slot.index, pid=pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = 0
            if self.stopping:
                continue
            failed = os.WIFEXITED(status) and os.WEXITSTATUS(status) == STARTUP_FAILURE
            if failed and slot.launches == 1:
                # the gateway cannot start at all (its log says why): trying again will not help;
                # a worker that served before and fails to start again is retried (backoff)
                log.error("worker_start_failed", worker=slot.index, pid=pid)
                self.stopping, self.code = True, STARTUP_FAILURE
                continue
            now = time.monotonic()
            if now - slot.started >= STABLE:
                slot.backoff = BACKOFF
            slot.due = now + slot.backoff
            log.warning(
                "worker_exited",
                worker=slot.index,
                pid=pid,
                status=_describe(status),
                restart_in=round(slot.backoff, 2),
            )
            slot.backoff = min(slot.backoff * 2, MAX_BACKOFF)

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.due and slot.due <= now and not slot.pid:
                self._spawn(slot)

    def _signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    def _stop(self) -> int:
        self._signal_all(signal.SIGTERM)
        ends = time.monotonic() + STOP_TIMEOUT
        while any(s.pid for s in self.slots) and time.monotonic() < ends:
            self._reap()
            signal.sigtimedwait([signal.SIGCHLD], 0.1)
        self._signal_all(signal.SIGKILL)
        while any(s.pid for s in self.slots):
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            for slot in self.slots:
                if slot.pid == pid:
                    slot.pid = 0
        return self.code


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
