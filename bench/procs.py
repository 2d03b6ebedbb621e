"""Child processes of the benchmark: each starts pinned to a CPU in a process group of its own,
and every one is stopped at the end whatever happens (``Children.stop_all`` in a finally)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A child did not start, or did not become ready in time."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    _out: IO[bytes] = field(repr=False)

    @property
    def pgid(self) -> int:
        """The child leads a session of its own, so its pid is its process group id."""
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Children:
    """Every process the benchmark started, logs in ``logdir``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._live: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log = self.logdir / f"{name}.log"
        out = log.open("wb")
        try:
            proc = subprocess.Popen(
                ["taskset", "-c", str(cpu), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
                cwd=cwd,
            )
        except OSError:
            out.close()
            raise
        child = Child(name, proc, log, out)
        self._live.append(child)
        return child

    def run(self, name: str, argv: Sequence[str], cpu: int, timeout: float) -> str:
        """Run a child to its end (bounded by ``timeout``) and return its output."""
        child = self.start(name, argv, cpu)
        try:
            code = child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StartError(f"{name} still running after {timeout:.0f}s; stopped it") from None
        finally:
            self.stop(child)
        text = child.log.read_text(errors="replace")
        if code != 0:
            raise StartError(f"{name} exited with {code}: {child.tail()}")
        return text

    def stop(self, child: Child, grace: float = 10.0) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left after ``grace`` seconds."""
        if child in self._live:
            self._live.remove(child)
        _signal_group(child.pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(grace)
        _signal_group(child.pgid, signal.SIGKILL)  # stragglers: workers, forked helpers
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5.0)
        child._out.close()

    def stop_all(self) -> None:
        for child in reversed(list(self._live)):
            self.stop(child)


def group_pids(pgid: int) -> list[int]:
    """Processes in the process group, found through /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
            pids.append(int(entry))
    return pids


def pin_group(pgid: int, cpu: int) -> None:
    """Move every thread of every process of the group to ``cpu`` (taskset -a -p, in Python)."""
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), {cpu})


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the live processes of the group."""
    ticks = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def cpu_times(cpu: int) -> tuple[float, float]:
    """(busy, total) seconds of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [
                int(x) for x in line.split()[1:9]
            ]  # user nice system idle iowait irq softirq steal
            return (sum(v) - v[3] - v[4]) / CLOCK_TICKS, sum(v) / CLOCK_TICKS
    raise OSError(f"no cpu{cpu} in /proc/stat")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:port: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(child: Child, probe: Callable[[], bool], timeout: float) -> float:
    """Poll ``probe`` until it is true; fail early if the child exits. Returns seconds taken."""
    start = time.monotonic()
    while True:
        if not child.alive():
            rc, last = child.proc.returncode, child.tail(1)
            raise StartError(f"{child.name} exited with {rc}: {last}\n{child.tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if probe():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            last = child.tail(1)
            raise StartError(
                f"{child.name} not ready within {timeout:.0f}s: {last}\n{child.tail()}"
            )
        time.sleep(0.2)


def http_ok(port: int, path: str) -> Callable[[], bool]:
    return lambda: request(port, "GET", path, timeout=2.0)[0] == 200


def accepts(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True

    return probe
