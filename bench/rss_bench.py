"""RSS of one failwell worker: right after start-up and after N proxied requests (default 100k,
half V2, half chat), for one or more source trees side by side (e.g. before/after a change).

Method: the bench's fast upstream (nginx, fixed answers) on CPU 1, failwell serve (one worker,
the bench config: routes bench, images, rows and chat; tiers, breakers, metrics on) pinned to
CPU 0, wrk on CPU 1 in chunks of a few seconds until the count is reached (bounded by
--max-seconds). RSS and its peak (VmHWM) are read from /proc of the worker. Runs alternate
between the trees (the machine is shared: medians and the spread are reported).

Writes bench/results/rss-<date>.md (also printed).

Usage: .venv/bin/python bench/rss_bench.py [--requests 100000] [--rounds 2]
       [--src label=PATH ...]  (default: this tree's src)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from load import wrk
from procs import Children, free_port, http_ok, wait_ready
from report import save_markdown
from targets import PATHS, REQUESTS, failwell_config, start_upstream

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CHUNK_S = 4.0


@dataclass
class Run:
    label: str
    start_mib: float
    after_mib: float
    peak_mib: float
    requests: int
    errors: int
    rps: float


def status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {key} for {pid}")


def one(
    args: argparse.Namespace, children: Children, tmp: Path, upstream: int, label: str, src: Path
) -> Run:
    port = free_port()
    cfg = tmp / f"failwell-{label}.yaml"
    cfg.write_text(failwell_config(port, upstream, tmp / label))
    (tmp / label).mkdir(exist_ok=True)
    argv = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "failwell",
        "serve",
        "--config",
        str(cfg),
        "--workers",
        "1",
    ]
    child = children.start(f"failwell-{label}", argv, 0, env={"PYTHONPATH": str(src)})
    try:
        wait_ready(child, http_ok(port, "/health/live"), timeout=60)
        pid = child.proc.pid
        run = Run(label, status_mib(pid, "VmRSS"), 0.0, 0.0, 0, 0, 0.0)
        seconds = 0.0
        while run.requests < args.requests and seconds < args.max_seconds:
            for route in ("v2", "chat"):
                url = f"http://127.0.0.1:{port}{PATHS[route]}"
                load = wrk(children, f"wrk-{label}", url, REQUESTS[route], 8, CHUNK_S, 1)
                run.requests += load.requests
                run.errors += load.errors
                seconds += load.seconds
        run.rps = run.requests / seconds if seconds else 0.0
        run.after_mib, run.peak_mib = status_mib(pid, "VmRSS"), status_mib(pid, "VmHWM")
    finally:
        children.stop(child)
    print(
        f"{label}: start {run.start_mib:.1f} MiB, after {run.requests:,} requests "
        f"{run.after_mib:.1f} MiB (peak {run.peak_mib:.1f}), errors {run.errors}",
        flush=True,
    )
    return run


def table(runs: list[Run], labels: list[str]) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    lines = [
        "| tree | runs | RSS after start MiB | RSS after load MiB | peak MiB | requests | "
        "errors | req/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in labels:
        mine = [r for r in runs if r.label == label]
        lines.append(
            f"| {label} | {len(mine)} | {cell([r.start_mib for r in mine])} | "
            f"{cell([r.after_mib for r in mine])} | {cell([r.peak_mib for r in mine])} | "
            f"{statistics.median(r.requests for r in mine):,.0f} | "
            f"{sum(r.errors for r in mine)} | {statistics.median(r.rps for r in mine):,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=240.0, help="load per run at most")
    p.add_argument("--src", action="append", default=[], help="label=PATH of a src folder")
    args = p.parse_args()
    trees = dict(s.split("=", 1) for s in args.src) or {"this": str(ROOT / "src")}
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="failwell-rss-bench-") as name:
        tmp = Path(name)
        children = Children(tmp)
        try:
            upstream = start_upstream(children, tmp, 1)
            for _ in range(args.rounds):
                for label, src in trees.items():
                    runs.append(one(args, children, tmp, upstream.port, label, Path(src)))
        finally:
            children.stop_all()
    body = f"Trees: {trees}; {args.rounds} rounds.\n\n{table(runs, list(trees))}"
    save_markdown(RESULTS, "rss", "RSS of one failwell worker", __doc__, body)


if __name__ == "__main__":
    main()
