"""The autoscaling ramp, full size: a gateway whose backend runs managed demo model servers
(20 ms of service time, 2 requests at once each, min 2, max 10), open-loop load from 10 to 400
requests/s over a minute, held, then back to 10; with the trend on, and (``--compare``) the
same run with it off. Writes ``bench/results/ramp-<date>[-no-trend].{json,html}`` (the HTML
draws load, latency against the SLO, and the replicas with each decision) and prints a table.

    .venv/bin/python bench/ramp_bench.py [--compare] [--short] [--peak 200]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from failwell.demo.procs import ManagedProcess
from failwell.drills.ramp import BACKEND, FULL, SHORT, RampPlan, ramp_config, run_ramp
from failwell.drills.ramp_report import render_ramp_html

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(size: int) -> tuple[int, int]:
    """A run of ``size`` free loopback ports below the ephemeral range (the load's client
    connections take ports from that range by the thousand)."""
    for first in range(20000, 32000 - size, size + 7):
        try:
            for port in range(first, first + size):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first, first + size - 1
    raise RuntimeError("no run of free ports")


def serving(url: str) -> int:
    with urllib.request.urlopen(f"{url}/admin/supervisor", timeout=2) as resp:
        replicas = json.load(resp)[BACKEND]["replicas"]
    return sum(1 for r in replicas if r["state"] == "serving")


def run_once(plan: RampPlan, tmp: Path, name: str) -> dict[str, Any]:
    port = free_port()
    config = ramp_config(port, free_ports(plan.high + 2), str(tmp / name / "replicas"), plan)
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(config))
    url = f"http://127.0.0.1:{port}"
    gateway = ManagedProcess(name, log_file=tmp / f"{name}.log")
    try:
        gateway.start(
            [sys.executable, "-m", "failwell", "serve", "--config", str(path)],
            ready_url=f"{url}/health/live",
            timeout=60,
        )
        ends = time.monotonic() + 60
        while serving(url) < plan.low:
            if time.monotonic() > ends:
                raise RuntimeError(f"{plan.low} replicas not serving within 60 s")
            time.sleep(0.2)
        return asyncio.run(run_ramp(url, plan, progress=print))
    finally:
        gateway.stop(grace=20)


def row(label: str, r: dict[str, Any]) -> str:
    ready = r["decide_to_serving_s"]
    peak = max(s["p99_ms"] for s in r["series"] if s["sent"])
    over = sum(1 for s in r["series"] if s["sent"] >= 10 and s["p99_ms"] > r["slo_p99_ms"])
    return (
        f"| {label} | {r['verdict']} | {r['first_up_s']} | {r['first_breach_s'] or '—'} | {over} "
        f"| {peak:.0f} | {max(x['serving'] for x in r['replicas'])} | {len(r['decisions'])} "
        f"| {', '.join(f'{s:.2f}' for s in ready) or '—'} | {r['failed']} / {r['requests']} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="store_true", help="also run with the trend off")
    parser.add_argument("--short", action="store_true", help="the suite's 17 s ramp")
    parser.add_argument(
        "--peak", type=float, help="scale the profile's rates to this peak (a busy machine)"
    )
    args = parser.parse_args()
    plan = SHORT if args.short else FULL
    if args.peak:
        plan = plan.scaled(args.peak)
    runs = [("trend", plan)]
    if args.compare:
        off = {**plan.autoscale, "trend": {"enabled": False}}
        runs.append(("no-trend", dataclasses.replace(plan, autoscale=off)))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.date.today().isoformat() + ("-short" if args.short else "")
    stamp += f"-peak{args.peak:g}" if args.peak else ""
    lines = [
        "| run | verdict | first up (s) | first p99 breach (s) | seconds over SLO | worst p99 (ms) "
        "| most serving | decisions | decide → serving (s) | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="failwell-ramp-") as tmp:
        for label, p in runs:
            result = run_once(p, Path(tmp), label)
            base = RESULTS / f"ramp-{stamp}{'' if label == 'trend' else '-' + label}"
            base.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
            base.with_suffix(".html").write_text(render_ramp_html(result))
            lines.append(row(label, result))
            print(f"wrote {base}.json and {base}.html")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
