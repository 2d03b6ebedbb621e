"""Start a child process, wait until it is ready, and stop it, with every wait bounded.

Each child runs in its own session (process group), so ``stop`` and ``kill`` reach whatever it
started too. Its stdout and stderr are merged and drained by a thread, so the pipe never fills;
the last lines are kept for error messages and can also go to a log file. Children still
running when the interpreter exits are stopped by an ``atexit`` hook.

    proc = ManagedProcess("ranker-1")
    proc.start([sys.executable, "-m", "failwell.demo.modelserver", "--port", "0"],
               ready_line="READY", timeout=30)
    port = int(proc.ready_output.split()[1])
    proc.kill(signal.SIGSTOP)          # freeze it; SIGCONT thaws it
    proc.stop()                        # SIGTERM, then SIGKILL after the grace period
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

TAIL_LINES = 200
_POLL = 0.05
_DRAIN_WAIT = 5.0  # for the output of a child that exited to be read


class ProcessStartError(RuntimeError):
    """A child exited, or did not become ready in time, during start-up."""


class ManagedProcess:
    def __init__(self, name: str = "process", *, log_file: Path | None = None) -> None:
        self.name = name
        self.log_file = log_file
        self.ready_output: str | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._ready_prefix: str | None = None
        self._ready = threading.Event()
        self._drained = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid={self.pid} rc={self.returncode}"
        return f"ManagedProcess({self.name!r}, {state})"

    # -- starting -------------------------------------------------------------------------

    def start(
        self,
        cmd: Sequence[str],
        *,
        ready_line: str | None = None,
        ready_url: str | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Spawn ``cmd`` and wait until it is ready (see ``wait_ready``).

        On failure the child's process group is killed and ``ProcessStartError`` raised."""
        self.spawn(cmd, ready_line=ready_line, env=env, cwd=cwd)
        self.wait_ready(ready_url=ready_url, timeout=timeout)
        return self

    def spawn(
        self,
        cmd: Sequence[str],
        *,
        ready_line: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Spawn ``cmd`` without waiting. ``ready_line``: the prefix of the output line that
        says the child is ready (kept in ``ready_output``)."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started")
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self._ready_prefix = ready_line
        try:
            self._popen = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessStartError(f"{self.name}: cannot run {cmd[0]!r}: {exc}") from exc
        _live.add(self)
        log = self.log_file.open("ab") if self.log_file is not None else None
        stdout = self._popen.stdout
        assert stdout is not None
        threading.Thread(
            target=self._drain, args=(stdout, log), name=f"drain-{self.name}", daemon=True
        ).start()

    def wait_ready(self, *, ready_url: str | None = None, timeout: float = 60.0) -> None:
        """Wait until the ready line appeared and ``ready_url`` (if given) answers 2xx.

        Raises ``ProcessStartError`` (after killing the child) when the child exits first or
        ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        try:
            if self._ready_prefix is not None:
                while not self._ready.wait(_POLL):
                    if self.returncode is not None:
                        # It exited: the ready line may still sit unread in the pipe.
                        self._drained.wait(_DRAIN_WAIT)
                        if self._ready.is_set():
                            break
                    self._check_alive("before printing " + repr(self._ready_prefix))
                    self._check_time(deadline, timeout, f"print {self._ready_prefix!r}")
            if ready_url is not None:
                while not _answers(ready_url, max(0.05, min(1.0, deadline - time.monotonic()))):
                    self._check_alive(f"before {ready_url} answered")
                    self._check_time(deadline, timeout, f"answer {ready_url}")
                    time.sleep(_POLL)
        except ProcessStartError:
            self.stop(grace=1.0)
            raise

    def _check_alive(self, when: str) -> None:
        rc = self.returncode
        if rc is not None:
            self._drained.wait(_DRAIN_WAIT)
            raise ProcessStartError(f"{self.name} exited with code {rc} {when}{self._last_words()}")

    def _check_time(self, deadline: float, timeout: float, what: str) -> None:
        if time.monotonic() >= deadline:
            raise ProcessStartError(
                f"{self.name} did not {what} within {timeout:g}s{self._last_words()}"
            )

    def _last_words(self, lines: int = 20) -> str:
        tail = self.output(lines)
        return f"; its last output:\n{tail}" if tail else "; it printed nothing"

    def _drain(self, stdout: IO[bytes], log: IO[bytes] | None) -> None:
        try:
            for raw in iter(stdout.readline, b""):
                if log is not None:
                    log.write(raw)
                    log.flush()
                line = raw.decode(errors="replace").rstrip("\r\n")
                with self._lock:
                    self._tail.append(line)
                prefix = self._ready_prefix
                if prefix is not None and not self._ready.is_set() and line.startswith(prefix):
                    self.ready_output = line
                    self._ready.set()
        finally:
            stdout.close()
            if log is not None:
                log.close()
            self._drained.set()

    # -- observing ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """None while running; the exit code (negative: killed by that signal) after."""
        return None if self._popen is None else self._popen.poll()

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def output(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines the child printed (stdout and stderr)."""
        with self._lock:
            tail = list(self._tail)[-lines:]
        return "\n".join(tail)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the child to exit; its exit code or None."""
        if self._popen is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._popen.wait(timeout)
        return None

    # -- stopping -------------------------------------------------------------------------

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the child's process group (SIGKILL, SIGSTOP, SIGCONT, ...).

        Does nothing once the child has exited and been reaped."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        if self._popen.poll() is None:
            self._signal_group(sig)

    def _signal_group(self, sig: int) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the exit code.

        Safe to call more than once and on a child that already exited."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal_group(signal.SIGCONT)  # a frozen child cannot act on SIGTERM
            self._signal_group(signal.SIGTERM)
            if self.wait(grace) is None:
                self._signal_group(signal.SIGKILL)
                self.wait(5.0)
            # Whatever the child started in its group goes too. The leader was reaped just
            # now and the group id stays reserved while any member lives, so this cannot
            # reach an unrelated process.
            self._signal_group(signal.SIGKILL)
        self._drained.wait(_DRAIN_WAIT)
        _live.discard(self)
        return popen.poll()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _answers(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


_live: set[ManagedProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_live):
        proc.stop(grace=2.0)
