"""What the drift monitor costs on the request path: CPU per request of its observer with the
monitor on (a watched route: sample the inputs and the tier-1 outputs into the window) versus
off (the route has no ``drift:``: one dict lookup), in-process, rounds alternating on and off;
and, off the request path, the CPU of one evaluation of a full window (KS, chi-square, PSI in
a worker thread every ``drift.every``), also per request at a given request rate.

Writes bench/results/drift-<date>.md (also printed).

Usage: .venv/bin/python bench/drift_bench.py [--calls N] [--rounds N] [--window N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from failwell.config.drift import DriftConfig
from failwell.config.models import RouteConfig
from failwell.contracts import Answer, Exchange
from failwell.drift.monitor import DriftMonitor
from failwell.drift.stats import reference_of

BENCH = Path(__file__).resolve().parent


def _route(drift: DriftConfig | None) -> RouteConfig:
    return RouteConfig.model_validate(
        {
            "input": {"a": "float", "b": "float", "c": "str"},
            "tiers": [{"name": "s", "value": 1}],
            **({"drift": drift.model_dump()} if drift is not None else {}),
        }
    )


def _exchanges(n: int) -> list[Exchange]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        ex = Exchange(f"id{i}", {}, route="r", status=200)
        ex.inputs = {"a": float(rng.normal()), "b": float(rng.normal()), "c": "xyz"[i % 3]}
        ex.answer = Answer({"score": 0.5, "label": 1}, "model", "full", "m", "m@v1", 0.001, 0)
        out.append(ex)
    return out


def _monitor(on: bool, window: int) -> DriftMonitor:
    rows = [ex.inputs or {} for ex in _exchanges(2000)]
    monitor = DriftMonitor(CollectorRegistry(), lambda *a: None)
    cfg = DriftConfig(reference="bench", window=window, min_samples=100)
    reference = reference_of(rows)
    monitor.bind({"r": _route(cfg if on else None)}, {"r": reference} if on else {})
    return monitor


def per_call_us(monitor: DriftMonitor, exchanges: list[Exchange]) -> float:
    started = time.process_time()
    for ex in exchanges:
        monitor(ex)
    return (time.process_time() - started) / len(exchanges) * 1e6


def evaluation_ms(window: int) -> float:
    monitor = _monitor(True, window)
    for ex in _exchanges(window):
        monitor(ex)
    started = time.process_time()
    asyncio.run(monitor.evaluate())
    return (time.process_time() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--window", type=int, default=1000)
    args = parser.parse_args()
    exchanges = _exchanges(args.calls)
    on, off = _monitor(True, args.window), _monitor(False, args.window)
    per_call_us(on, exchanges[:10_000])  # warm-up
    per_call_us(off, exchanges[:10_000])
    results: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):  # alternating, so a noisy neighbour hits both
        results["off"].append(per_call_us(off, exchanges))
        results["on"].append(per_call_us(on, exchanges))
    evals = [evaluation_ms(args.window) for _ in range(max(3, args.rounds // 2))]
    eval_ms = statistics.median(evals)
    lines = [
        f"# Drift monitor cost — {dt.date.today().isoformat()}",
        "",
        f"Host: {platform.machine()}, Python {sys.version.split()[0]}; in-process, CPU time "
        f"(process_time) of {args.calls:,} observer calls per round, {args.rounds} rounds "
        "alternating off/on; median, min and max. Three features (two numbers, one category) and "
        "tier-1 outputs (two keys), sample 1.0.",
        "",
        "| monitor | µs CPU per request (median) | min | max |",
        "| --- | --- | --- | --- |",
    ]
    for mode, values in results.items():
        lines.append(
            f"| {mode} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |"
        )
    delta = statistics.median(results["on"]) - statistics.median(results["off"])
    lines += [
        f"| **on - off** | **{delta:.3f}** | | |",
        "",
        f"Off the request path: one evaluation of a {args.window}-sample window (KS + chi-square "
        f"+ PSI, in a worker thread) takes {eval_ms:.1f} ms CPU (median of {len(evals)}; "
        f"{min(evals):.1f} to {max(evals):.1f}); every 10 s at 100 requests/s that is "
        f"{eval_ms * 1000 / 1000:.2f} µs per request, at 1,000 requests/s "
        f"{eval_ms * 1000 / 10_000:.2f} µs.",
        "",
        "The machine was shared with other work while this ran; the rounds alternate so both "
        "modes meet the same noise.",
    ]
    text = "\n".join(lines) + "\n"
    out = BENCH / "results" / f"drift-{dt.date.today().isoformat()}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
