"""What watching costs: CPU and latency of one active health probe and of one canary
inference (gateway side, against a real demo model server on loopback), and the CPU the
per-request observers add (SLO counting, recent traffic, answer metrics).

    .venv/bin/python bench/probe_cost.py [--probes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from failwell.api.app import App
from failwell.config import parse_config
from failwell.contracts import Answer, Exchange
from failwell.demo.procs import ManagedProcess
from failwell.gateway import Gateway

ROOT = Path(__file__).resolve().parents[1]


def config(port: int) -> dict[str, Any]:
    return {
        "gateway": {"cache": {"path": ":memory:"}},
        "backends": {
            "echo": {
                "protocol": "v2",
                "model": "ranker",
                "replicas": [{"url": f"http://127.0.0.1:{port}", "name": "m1"}],
                "health": {"interval": "1s"},
            }
        },
        "routes": {
            "echo": {
                "input": {"user_id": "str"},
                "canary": {"checks": [{"inputs": {"user_id": "c"}, "expect": {"user_id": "c"}}]},
                "slo": {"quality": 0.9, "tier1_floor": 0.5, "latency_p99": "100ms"},
                "tiers": [{"name": "primary", "backend": "echo"}, {"name": "cache"}],
            }
        },
    }


async def measure(app: App, n: int) -> dict[str, float]:
    plane = app.gateway.health
    prober, canaries = plane.prober, plane.canaries
    await prober.start()
    await prober.loops.stop()  # drive probes by hand, back to back (the session stays open)
    health, url, cfg = prober.targets[0]
    route, tier, ccfg, inputs = canaries.routes[0]
    for _ in range(50):  # warm up connections
        await prober.probe(health, url, cfg)
        await canaries.run_once(route, tier, ccfg, inputs)
    figures: dict[str, float] = {}
    for name, call in (
        ("probe", lambda: prober.probe(health, url, cfg)),
        ("canary", lambda: canaries.run_once(route, tier, ccfg, inputs)),
    ):
        latencies = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
        latencies.sort()
        figures[f"{name}_cpu_us"] = cpu / n * 1e6
        figures[f"{name}_latency_p50_us"] = statistics.median(latencies) * 1e6
        figures[f"{name}_latency_p99_us"] = latencies[int(0.99 * n)] * 1e6
    await prober.stop()
    for replica in app.gateway.pools["echo"].replicas:
        await replica.adapter.close()
    return figures


def observers_cost(gateway: Gateway, n: int = 200_000) -> float:
    ex = Exchange("rid", {}, "/v1/predict/echo", front_end="predict", route="echo", status=200)
    ex.answer = Answer({"user_id": "u"}, "primary", "full", "echo", "v1", 0.004, 0, "m1")
    observers = gateway.observers
    t0 = time.process_time()
    for _ in range(n):
        for observer in observers:
            observer(ex)
    return (time.process_time() - t0) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedProcess("modelserver", log_file=Path(tmp) / "m.log")
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server.start(
            [sys.executable, "-m", "failwell.demo.modelserver", "--port", str(port)],
            ready_line="READY",
            timeout=60,
        )
        try:
            gateway = Gateway(parse_config(config(port), resolve=False))
            app = App(gateway)
            figures = asyncio.run(measure(app, args.probes))
            figures["observers_cpu_us_per_request"] = observers_cost(gateway)
        finally:
            server.stop(grace=2)
    out = {k: round(v, 2) for k, v in figures.items()}
    print(json.dumps(out, indent=2))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "probe_cost.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
