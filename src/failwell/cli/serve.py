"""Run the gateway under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import ssl
from pathlib import Path

import uvicorn

from failwell.config.models import FailwellConfig
from failwell.gateway import build
from failwell.observe.logging import configure


def run(config: FailwellConfig, log_level: str = "info", path: Path | None = None) -> None:
    configure(log_level)
    app = build(config, path).app()  # with a path: reload on SIGHUP or a change of the file
    gw = config.gateway
    tls = gw.tls
    uvicorn.run(
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
