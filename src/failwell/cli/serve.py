"""Run the gateway under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import ctypes
import socket
import ssl
import tempfile
from pathlib import Path

import uvicorn

from failwell.cli.workers import WorkerParent, listen, worker_count
from failwell.config.models import FailwellConfig
from failwell.gateway import build
from failwell.observe.logging import configure
from failwell.observe.siblings import Siblings

# glibc malloc serves blocks over its mmap threshold (128 KiB at first) with fresh mmap'd pages
# and returns them on free: a 4 MB tensor body then costs ~1,000 page faults and as much
# zeroing on each of its copies, which made the kernel's share of the gateway's CPU on a
# 4.3 MB request 3x nginx's (bench/tensor_bench.py). Fixed thresholds keep such blocks in the
# heap and reuse them; the heap may keep up to TRIM_THRESHOLD of freed memory.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest
TRIM_THRESHOLD = 128 * 1024 * 1024


def tune_allocator() -> bool:
    """Set glibc's malloc thresholds for large request bodies; False where there is no glibc
    (musl, macOS), which is fine: nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def run(
    config: FailwellConfig,
    log_level: str = "info",
    path: Path | None = None,
    workers: int | None = None,
) -> None:
    """Serve ``config``: in this process, or in ``workers`` processes on one port (see
    ``cli/workers.py``; None: one per core with a fleet section, else one)."""
    configure(log_level)
    tune_allocator()
    count = worker_count(config, workers)
    if count == 1:
        server(config, path).run()
        return
    gw = config.gateway
    sock = listen(gw.host, gw.port)
    with tempfile.TemporaryDirectory(prefix="failwell-workers-") as run_dir:

        def work(index: int, shared: socket.socket) -> None:
            siblings = Siblings(index, count, Path(run_dir))
            server(for_worker(config, index), path, siblings).run(sockets=[shared])

        WorkerParent(count, sock, work).run()


def for_worker(config: FailwellConfig, index: int) -> FailwellConfig:
    """Worker ``index``'s config: a fleet instance name of its own when one is configured."""
    fleet = config.fleet
    if fleet is None or fleet.instance is None:
        return config  # the default name is host and pid: unique already
    named = fleet.model_copy(update={"instance": f"{fleet.instance}-w{index}"})
    return config.model_copy(update={"fleet": named})


def server(
    config: FailwellConfig, path: Path | None, siblings: Siblings | None = None
) -> uvicorn.Server:
    """A uvicorn server for the gateway ``config`` builds (with a path: reload on SIGHUP or a
    change of the file)."""
    app = build(config, path, siblings=siblings).app()
    gw = config.gateway
    tls = gw.tls
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=gw.host,
            port=gw.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=gw.access_log,
            log_level="warning",
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=5,
            ssl_certfile=tls.cert if tls else None,
            ssl_keyfile=tls.key if tls else None,
            ssl_ca_certs=tls.client_ca if tls else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca else ssl.CERT_NONE,
        )
    )
