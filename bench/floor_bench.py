"""Where failwell's CPU per request goes: the server it runs on alone, that server relaying
with failwell's HTTP client, and failwell's chat and V2 routes.

Method: the bench's fast upstream (nginx, fixed answers) on CPU 1; each target alone on CPU 0
(one process); wrk on CPU 1, chat body (V2 body for failwell's V2 route), after a 1 s warm-up.
Targets: ``server alone`` (uvicorn with httptools, uvloop and failwell's connection protocol,
answering a fixed completion: ``bench/floor_app.py fixed``), ``server + client`` (the same,
relaying each body upstream with ``backends/http.py``: ``floor_app.py proxy``), and
``failwell serve --workers 1`` with the bench config (tiers, breakers, metrics, observers on).
Runs alternate between targets, rounds of each; medians (min-max). At 8 connections a saturated
process's p50 is about connections times CPU per request: the added p50 follows the CPU.

Usage: .venv/bin/python bench/floor_bench.py [--rounds 3] [--seconds 4] [--connections 1,8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from load import cpu_per_request
from procs import Child, Children, accepts, free_port, http_ok, wait_ready
from report import save_markdown
from targets import PATHS, REQUESTS, ROOT, failwell_config, start_upstream

BENCH = Path(__file__).resolve().parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
TARGET_CPU, LOAD_CPU = 0, 1


def start(children: Children, tmp: Path, name: str, upstream: int) -> tuple[int, Child]:
    port = free_port()
    env = {"PYTHONPATH": str(ROOT / "src")}
    if name == "failwell":
        cfg = tmp / "failwell.yaml"
        cfg.write_text(failwell_config(port, upstream, tmp))
        argv = [PYTHON, "-m", "failwell", "serve", "--config", str(cfg), "--workers", "1"]
        child = children.start(name, argv, TARGET_CPU, env=env)
        wait_ready(child, http_ok(port, "/health/live"), timeout=60)
    else:
        argv = [PYTHON, str(BENCH / "floor_app.py"), name, str(port), str(upstream)]
        child = children.start(name, argv, TARGET_CPU, env=env)
        wait_ready(child, accepts(port), timeout=30)
    return port, child


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--connections", default="1,8")
    args = p.parse_args()
    cases = [
        ("server alone", "fixed", "chat"),
        ("server + client", "proxy", "chat"),
        ("failwell chat", "failwell", "chat"),
        ("failwell V2", "failwell", "v2"),
    ]
    conns = [int(c) for c in args.connections.split(",")]
    cells: dict[tuple[str, int], list[tuple[float, float, float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="failwell-floor-bench-") as name:
        tmp = Path(name)
        children = Children(tmp)
        try:
            upstream = start_upstream(children, tmp, LOAD_CPU).port
            procs = {k: start(children, tmp, k, upstream) for k in ("fixed", "proxy", "failwell")}
            for _ in range(args.rounds):
                for label, key, route in cases:
                    port, child = procs[key]
                    url = f"http://127.0.0.1:{port}{PATHS[route]}"
                    for c in conns:
                        load, us = cpu_per_request(
                            children, child, url, REQUESTS[route], c, args.seconds, LOAD_CPU
                        )
                        cells.setdefault((label, c), []).append(
                            (us, load.rps, load.p50_ms, load.errors)
                        )
                        print(f"{label:16} c={c:<2} {us:7.1f} µs/req p50 {load.p50_ms:.3f} ms")
        finally:
            children.stop_all()

    def cell(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    lines = [
        "| target | connections | CPU µs/req | p50 ms | req/s | errors |",
        "| --- | ---: | --- | --- | ---: | ---: |",
    ]
    for label, _, _ in cases:
        for c in conns:
            rows = cells[(label, c)]
            lines.append(
                f"| {label} | {c} | {cell([r[0] for r in rows], '.1f')} | "
                f"{cell([r[2] for r in rows], '.3f')} | "
                f"{statistics.median(r[1] for r in rows):,.0f} | {sum(r[3] for r in rows)} |"
            )
    body = f"{args.rounds} rounds of {args.seconds:g} s per cell.\n\n" + "\n".join(lines)
    save_markdown(
        ROOT / "bench" / "results", "floor", "failwell over its server's floor", __doc__, body
    )


if __name__ == "__main__":
    main()
