"""The demo's redis-server, started when the demo config has a fleet (``failwell demo
--fleet``): the gateway's workers share state through it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from failwell.demo.procs import ManagedProcess, ProcessStartError

REDIS_OFFSET = 300  # its port: the demo's base port + 300
START_TIMEOUT = 60.0
STOP_GRACE = 5.0


def redis_answers(port: int) -> bool:
    """redis-server on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(log_file: Path, workdir: Path, port: int) -> ManagedProcess:
    """A redis-server on loopback ``port`` for the demo's fleet (nothing saved to disk)."""
    proc = ManagedProcess("redis", log_file=log_file)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc.spawn([*argv, "--appendonly", "no", "--dir", str(workdir)])
    ends = time.monotonic() + START_TIMEOUT
    while not redis_answers(port):
        if not proc.alive() or time.monotonic() > ends:
            proc.stop(grace=STOP_GRACE)
            raise ProcessStartError(f"redis-server did not listen on {port}: {proc.output(10)}")
        time.sleep(0.05)
    return proc
