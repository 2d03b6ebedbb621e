"""`make bench`: what failwell itself costs per request, next to an nginx hop and LiteLLM.

Method (DESIGN §6): a fast upstream (nginx answering fixed bodies), and the same load from wrk
against (1) the upstream directly, (2) one nginx proxy hop, the floor for any proxy,
(3) failwell and (4) LiteLLM's proxy (chat only), at 1, 8 and 64 connections. The target
has CPU 0 to itself; wrk, and the upstream when it is not the target, run on CPU 1.

Writes bench/results/core-<date>.md (also printed) and core-<date>.json. Every child process
is stopped at the end, on Ctrl-C and on failure too; every wait is bounded.

Usage: .venv/bin/python bench/run.py [--quick] [--duration S] [--connections 1,8,64]
       [--targets direct,hop,failwell,litellm] [--keep-temp]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from load import failwell_answers, wrk
from procs import Children, StartError, cpu_seconds, cpu_times, pin_group
from report import LABELS, Cell, Report, host_facts, markdown, write
from targets import (
    BENCH,
    LITELLM_REQUIREMENT,
    PATHS,
    REQUESTS,
    Target,
    check,
    ensure_litellm,
    start_failwell,
    start_hop,
    start_litellm,
    start_upstream,
)

TARGET_CPU, LOAD_CPU = 0, 1
WARMUP_S = 1.0
FAILWELL_ROUTE = {"v2": "bench", "chat": "chat"}
ROUTES_OF: dict[str, tuple[str, ...]] = {
    "direct": ("v2", "chat"),
    "hop": ("v2", "chat"),
    "failwell": ("v2", "chat"),
    "litellm": ("chat",),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="3 s per cell instead of 8 s")
    p.add_argument("--duration", type=float, help="seconds per measured cell")
    p.add_argument("--connections", default="1,8,64", help="comma-separated connection counts")
    p.add_argument("--targets", default="direct,hop,failwell,litellm", help="which to measure")
    p.add_argument("--results", type=Path, default=BENCH / "results", help="output folder")
    p.add_argument("--keep-temp", action="store_true", help="keep configs and logs")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 8.0
    args.connections = [int(c) for c in args.connections.split(",")]
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - set(ROUTES_OF)
    if unknown or args.duration <= 0 or min(args.connections) < 1:
        p.error(f"bad --targets {sorted(unknown)}, --duration or --connections")
    return args


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, children: Children, report: Report) -> None:
        self.args = args
        self.children = children
        self.report = report

    def skip(self, key: str, problem: str) -> None:
        for route in ROUTES_OF[key]:
            for c in self.args.connections:
                self.report.cells.append(Cell(route, key, c, problem=problem))

    def measure(self, target: Target, pinning: str) -> None:
        for route in target.routes:
            problem = check(target, route)
            if problem:
                say(f"  {target.label}: {problem}\n  its log ends with:\n{target.child.tail(5)}")
            for c in self.args.connections:
                cell = Cell(route, target.key, c, pinning=pinning, problem=problem)
                self.report.cells.append(cell)
                if problem is None:
                    self._cell(target, route, cell)

    def _cell(self, target: Target, route: str, cell: Cell) -> None:
        url = f"http://127.0.0.1:{target.port}{PATHS[route]}"
        name = f"wrk-{target.key}-{route}-c{cell.connections}"
        body, conns, pgid = REQUESTS[route], cell.connections, target.child.pgid
        counted = target.key == "failwell"
        try:
            wrk(self.children, f"{name}-warmup", url, body, conns, WARMUP_S, LOAD_CPU)
            before = failwell_answers(target.port, FAILWELL_ROUTE[route]) if counted else {}
            cpu0, (busy0, total0) = cpu_seconds(pgid), cpu_times(TARGET_CPU)
            load = wrk(self.children, name, url, body, conns, self.args.duration, LOAD_CPU)
            cpu1, (busy1, total1) = cpu_seconds(pgid), cpu_times(TARGET_CPU)
            after = failwell_answers(target.port, FAILWELL_ROUTE[route]) if counted else {}
        except (StartError, OSError, http.client.HTTPException) as exc:
            cell.problem = (str(exc) or repr(exc)).splitlines()[0]
            say(f"  {route} {target.label} c={conns}: {cell.problem}")
            return
        cell.requests, cell.rps = load.requests, load.rps
        cell.p50_ms, cell.p90_ms, cell.p99_ms = load.p50_ms, load.p90_ms, load.p99_ms
        cell.mean_ms, cell.max_ms = load.mean_ms, load.max_ms
        cell.status_errors, cell.socket_errors = load.status_errors, load.socket_errors
        if load.requests:
            cell.cpu_us_per_request = (cpu1 - cpu0) / load.requests * 1e6
        if total1 > total0:
            cell.target_cpu_pct = 100 * (cpu1 - cpu0) / (total1 - total0)
            cell.other_cpu_pct = 100 * max(0.0, busy1 - busy0 - (cpu1 - cpu0)) / (total1 - total0)
        if counted:
            total = sum(after.values()) - sum(before.values())
            primary = after.get("primary/ok", 0.0) - before.get("primary/ok", 0.0)
            cell.not_primary = round(total - primary)
        flag = "  ⚠" if cell.flagged else ""
        say(
            f"  {route:4} {target.label:15} c={conns:<3} {load.rps:9,.0f} req/s  "
            f"p50 {load.p50_ms:7.3f} ms  p99 {load.p99_ms:7.3f} ms  errors {load.errors}{flag}"
        )


def tool_version(argv: list[str], words: slice) -> str:
    """Words of the first line a tool prints about its version."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return " ".join(lines[0].split()[words]) if lines else "unknown"


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace, tmp: Path, children: Children, report: Report) -> None:
    bench = Bench(args, children, report)
    exe: Path | None = None
    if "litellm" in args.targets:
        say(f"installing {LITELLM_REQUIREMENT} into .venv-litellm (when missing) ...")
        try:
            exe = ensure_litellm(tmp / "litellm-install.log")
        except StartError as exc:
            bench.skip("litellm", f"LiteLLM install failed ({exc})")
            say(f"  skipped LiteLLM: {exc}")
    upstream = start_upstream(children, tmp, TARGET_CPU)
    if "direct" in args.targets:
        say("upstream direct (nginx alone on CPU 0)")
        bench.measure(upstream, "upstream on CPU 0; wrk on CPU 1")
    pin_group(upstream.child.pgid, LOAD_CPU)
    up = upstream.port
    starters: dict[str, Callable[[], Target]] = {
        "hop": lambda: start_hop(children, tmp, up, TARGET_CPU),
        "failwell": lambda: start_failwell(children, tmp, up, TARGET_CPU),
    }
    if exe is not None:
        litellm = exe
        starters["litellm"] = lambda: start_litellm(children, tmp, up, TARGET_CPU, litellm)
    for key, start in starters.items():
        if key not in args.targets:
            continue
        say(f"{LABELS[key]} (alone on CPU 0; upstream and wrk on CPU 1)")
        try:
            target = start()
        except StartError as exc:
            say(f"  {LABELS[key]} did not start: {exc}")
            bench.skip(key, f"did not start: {str(exc).splitlines()[0]}")
            continue
        try:
            bench.measure(target, f"{LABELS[key]} on CPU 0; upstream + wrk on CPU 1")
        finally:
            children.stop(target.child)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    if (os.cpu_count() or 1) < 2:
        say("this benchmark needs 2 CPUs (target on one, load on the other)")
        return 2
    now = dt.datetime.now().astimezone()
    cells = len(args.connections) * sum(len(ROUTES_OF[t]) for t in args.targets)
    say(f"failwell bench: about {cells * (args.duration + WARMUP_S + 0.5):.0f} s of load")
    report = Report(
        date=now.date().isoformat(),
        started=now.isoformat(timespec="seconds"),
        seconds_per_cell=args.duration,
        host=host_facts(tool_version(["wrk", "-v"], slice(0, 2))),
    )
    load1 = os.getloadavg()[0]
    report.notes += [
        f"upstream: {tool_version(['nginx', '-v'], slice(2, 3))}, worker_processes 1, "
        "fixed `return 200` JSON bodies; the hop: a second nginx, keepalive to the upstream",
        "load: wrk with bench/post.lua, 1 thread for 1 connection, 2 otherwise; "
        f"load average at start {load1:.2f} (other work on the machine adds noise)",
        "failwell: routes bench (v2 → static) and chat (openai → static), deadline 1 s, "
        "timeout 500 ms; its /metrics are read to check every answer came from tier primary",
    ]
    if "litellm" in args.targets:
        report.notes.append(
            f"litellm: {LITELLM_REQUIREMENT} in .venv-litellm, 1 uvicorn worker, access log "
            "off; chat route only"
        )
    tmp = Path(tempfile.mkdtemp(prefix="failwell-bench-"))
    children = Children(tmp)
    started = time.monotonic()
    try:
        run(args, tmp, children, report)
    except StartError as exc:
        say(f"bench failed: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        children.stop_all()
        if args.keep_temp:
            say(f"configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    md, js = write(report, args.results)
    print(markdown(report), end="")
    say(f"wrote {md} and {js} in {time.monotonic() - started:.0f} s")
    failwell_failed = any(c.target == "failwell" and c.problem for c in report.cells)
    return 1 if failwell_failed else 0


if __name__ == "__main__":
    sys.exit(main())
