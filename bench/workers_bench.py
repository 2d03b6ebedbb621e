"""`failwell serve --workers 2` against `--workers 1` on this machine: throughput and CPU.

Method: the bench's fast upstream (nginx, fixed answers) and a redis-server (the fleet the
workers share) on CPU 1; failwell with one worker pinned to CPU 0, or two workers free on CPUs
0-1; wrk on CPU 1. On a 2-core machine the load generator cannot have a core to itself with
two workers, so the CPU of every part is measured (gateway processes, upstream, wrk as the rest
of what the two cores did) and printed beside the throughput. The ratio with the other parts'
CPU accounted for is two workers' throughput per gateway core over one worker's, times two
(what two workers serve given both cores, at the throughput per core they reached). Runs
alternate 1, 2, 1, 2, ... (the machine is shared: medians and the spread are reported).

Writes bench/results/workers-<date>.md (also printed).

Usage: .venv/bin/python bench/workers_bench.py [--rounds 3] [--duration 5] [--connections 8,64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from load import wrk
from procs import Children, cpu_seconds, cpu_times, free_port, group_pids, http_ok, wait_ready
from report import save_markdown
from targets import PATHS, REQUESTS, failwell_config, start_upstream

from failwell.demo.redisserver import redis_answers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ROUTES = ("v2", "chat")


@dataclass
class Run:
    workers: int
    route: str
    connections: int
    rps: float
    p50_ms: float
    errors: int
    gateway_cpu: float  # CPU seconds of the gateway processes over the run
    upstream_cpu: float
    machine_busy: float  # CPU seconds both cores were busy
    seconds: float

    @property
    def gateway_us(self) -> float:
        return self.gateway_cpu / max(1, self.rps * self.seconds) * 1e6


def start_redis(children: Children, tmp: Path) -> int:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    child = children.start("redis", [*argv, "--appendonly", "no", "--dir", str(tmp)], 1)
    wait_ready(child, lambda: redis_answers(port), timeout=10)
    return port


def spread(pgid: int, cpus: set[int]) -> None:
    for pid in group_pids(pgid):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


def measure(args: argparse.Namespace, tmp: Path, children: Children) -> list[Run]:
    upstream = start_upstream(children, tmp, 1)
    redis = start_redis(children, tmp)
    runs: list[Run] = []
    for round_ in range(args.rounds):
        for workers in (1, 2):
            port = free_port()
            cfg = json.loads(failwell_config(port, upstream.port, tmp))
            cfg["gateway"]["cache"]["path"] = str(tmp / f"cache-{round_}-{workers}.sqlite")
            cfg["fleet"] = {"redis": f"redis://127.0.0.1:{redis}/0", "name": f"b{round_}"}
            path = tmp / f"failwell-{workers}.yaml"
            path.write_text(json.dumps(cfg))
            python = ROOT / ".venv" / "bin" / "python"
            argv = [str(python), "-m", "failwell", "serve", "--config", str(path)]
            child = children.start(f"failwell-{workers}", [*argv, "--workers", str(workers)], 0)
            wait_ready(child, http_ok(port, "/health/live"), timeout=60)
            time.sleep(1.0)  # every worker up (the first answers /health/live first)
            if workers == 2:
                spread(child.pgid, {0, 1})
            for route in ROUTES:
                body = REQUESTS[route]
                url = f"http://127.0.0.1:{port}{PATHS[route]}"
                for connections in args.connections:
                    wrk(children, "warm", url, body, connections, 1.0, 1)
                    g0, u0 = cpu_seconds(child.pgid), cpu_seconds(upstream.child.pgid)
                    b0 = sum(cpu_times(c)[0] for c in (0, 1))
                    load = wrk(children, "wrk", url, body, connections, args.duration, 1)
                    g1, u1 = cpu_seconds(child.pgid), cpu_seconds(upstream.child.pgid)
                    b1 = sum(cpu_times(c)[0] for c in (0, 1))
                    run = Run(
                        workers,
                        route,
                        connections,
                        load.rps,
                        load.p50_ms,
                        load.errors,
                        g1 - g0,
                        u1 - u0,
                        b1 - b0,
                        load.seconds,
                    )
                    runs.append(run)
                    print(
                        f"round {round_ + 1} workers={workers} {route} c={connections}: "
                        f"{run.rps:,.0f} req/s p50 {run.p50_ms:.2f} ms, gateway "
                        f"{run.gateway_us:.0f} µs CPU/req, errors {run.errors}",
                        flush=True,
                    )
            children.stop(child)
    return runs


def table(runs: list[Run]) -> str:
    lines = [
        "| route | conns | workers | req/s median (min-max) | ratio 2/1 | 2/1 accounted | p50 ms "
        "| gateway CPU µs/req | gateway cores | upstream cores | rest (wrk, redis, other) cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = sorted({(r.route, r.connections) for r in runs})
    for route, conns in keys:
        medians: dict[int, float] = {}
        per_core: dict[int, float] = {}  # req/s per gateway core
        for workers in (1, 2):
            found = [
                r for r in runs if (r.route, r.connections, r.workers) == (route, conns, workers)
            ]
            if not found:
                continue
            rps = [r.rps for r in found]
            medians[workers] = statistics.median(rps)
            secs = statistics.median(r.seconds for r in found)
            gw = statistics.median(r.gateway_cpu for r in found) / secs
            up = statistics.median(r.upstream_cpu for r in found) / secs
            rest = statistics.median(r.machine_busy - r.gateway_cpu - r.upstream_cpu for r in found)
            per_core[workers] = medians[workers] / gw if gw > 0 else 0.0
            ratio = accounted = ""
            if workers == 2 and 1 in medians:
                ratio = f"{medians[2] / medians[1]:.2f}x"
                if per_core[1] > 0:
                    accounted = f"{2 * per_core[2] / per_core[1]:.2f}x"
            lines.append(
                f"| {route} | {conns} | {workers} | {medians[workers]:,.0f} ({min(rps):,.0f}-"
                f"{max(rps):,.0f}) | {ratio} | {accounted} "
                f"| {statistics.median(r.p50_ms for r in found):.2f} "
                f"| {statistics.median(r.gateway_us for r in found):.0f} | {gw:.2f} | {up:.2f} "
                f"| {rest / secs:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", default="8,64")
    args = p.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    if shutil.which("redis-server") is None or shutil.which("wrk") is None:
        raise SystemExit("needs redis-server and wrk on the PATH")
    with tempfile.TemporaryDirectory(prefix="failwell-workers-bench-") as name:
        tmp = Path(name)
        children = Children(tmp)
        try:
            runs = measure(args, tmp, children)
        finally:
            children.stop_all()
    body = f"{args.rounds} rounds of {args.duration:g} s per cell.\n\n{table(runs)}"
    save_markdown(RESULTS, "workers", "failwell serve --workers 2 vs 1", __doc__, body)


if __name__ == "__main__":
    main()
