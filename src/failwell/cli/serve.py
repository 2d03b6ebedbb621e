"""Run the gateway under uvicorn (uvloop + httptools; large request bodies read into one buffer,
``api/bodyreader.py``)."""

from __future__ import annotations

import contextlib
import ctypes
import socket
import ssl
import sys
import tempfile
from pathlib import Path

import uvicorn

from failwell.api.bodyreader import BodyReader
from failwell.cli.workers import STARTUP_FAILURE, WorkerParent, listen, worker_count
from failwell.config.models import FailwellConfig
from failwell.errors import ConfigError
from failwell.gateway import build
from failwell.observe.logging import configure, log
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
        sys.exit(serve(server(config, path)))
    gw = config.gateway
    sock = listen(gw.host, gw.port)
    with tempfile.TemporaryDirectory(prefix="failwell-workers-") as run_dir:

        def work(index: int, shared: socket.socket) -> int:
            siblings = Siblings(index, count, Path(run_dir))
            try:
                built = server(for_worker(config, index), path, siblings)
            except ConfigError as exc:  # e.g. a model_ref that cannot be served
                log.error(
                    "worker_config_refused", worker=index, issues=[str(i) for i in exc.issues]
                )
                return STARTUP_FAILURE
            return serve(built, shared)

        code = WorkerParent(count, sock, work).run()
    sys.exit(code)


def serve(server: uvicorn.Server, sock: socket.socket | None = None) -> int:
    """Run ``server`` until it stops: 0, or STARTUP_FAILURE when it never started (the
    gateway's start-up failed), as ``uvicorn.run`` does."""
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock] if sock is not None else None)
    return 0 if server.started else STARTUP_FAILURE


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
            http=BodyReader,
            lifespan="on",
            access_log=gw.access_log,
            # The one reader of the forwarded client is the admin check (api/auth.py); the
            # access log, when on, names it too (uvicorn's middleware: a layer per request).
            proxy_headers=gw.access_log,
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
