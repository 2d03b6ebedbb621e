"""An observed stack for the observability tests: two echo model servers as tier 1 with fast
health probes and canaries, a cache and a static tier, SLOs with second-scale windows, and an
alert webhook that records what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.conftest import Gateway, ModelServer, Stack, http_json


class Webhook:
    """A real HTTP server on loopback that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self, alert: str, state: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["alert"] == alert and e["state"] == state]


@contextmanager
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


def observed_config(
    stack: Stack, servers: list[ModelServer], hook_url: str | None = None
) -> dict[str, Any]:
    config = stack.config(
        backends={
            "echo": {
                "protocol": "v2",
                "model": "ranker",  # the demo server's v2 name; without --model-dir it echoes
                "timeout": "200ms",
                "replicas": [s.replica() for s in servers],
                "retry": {"attempts": 2, "backoff": "2ms", "max_backoff": "5ms"},
                "breaker": {"failure_threshold": 3, "recovery": "1s"},
                "health": {"interval": "200ms", "timeout": "150ms", "down_after": 2, "up_after": 2},
            }
        },
        routes={
            "echo": {
                "input": {"user_id": "str"},
                "deadline": "500ms",
                "canary": {
                    "interval": "300ms",
                    "latency_budget": "200ms",
                    "down_after": 2,
                    "checks": [{"inputs": {"user_id": "canary"}, "expect": {"user_id": "canary"}}],
                },
                "slo": {
                    "availability": 0.99,
                    "quality": 0.9,
                    "tier1_floor": 0.5,
                    "windows": [{"long": "8s", "short": "2s", "burn_rate": 2}],
                },
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "cache"},
                    {"name": "static", "value": {"user_id": "static"}},
                ],
            }
        },
    )
    config["alerts"] = {"evaluate_every": "250ms", "repeat_after": "1h"}
    if hook_url is not None:
        config["alerts"]["webhook"] = hook_url
    return config


def feed(gw: Gateway) -> dict[str, Any]:
    doc: dict[str, Any] = http_json(f"{gw.url}/dashboard/feed?window=60")
    return doc


def replica_healthy(gw: Gateway, name: str) -> bool:
    for replica in feed(gw)["backends"]["echo"]["replicas"]:
        if replica["name"] == name:
            return bool(replica["healthy"])
    raise KeyError(name)
