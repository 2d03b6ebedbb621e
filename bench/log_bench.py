"""What durability costs: gateway throughput and latency with the inference log off, in
``batch`` mode and in ``sync`` mode, and the measured batch-mode bound (queue → durable).

Method: one gateway process pinned to CPU 0, serving a route answered in-process (a python
backend, ``failwell.testing.models:Echo``: a thread hop, no network), so the log's cost is not
hidden behind a model's. wrk (Debian's) on CPU 1 posts one fixed body for ``--duration``
seconds at each connection count, after a 1 s warm-up. After each run the gateway's /metrics
give the log's lag (enqueue → fsynced) and commit sizes. The log lives on the disk of
``--dir`` (default: a temporary folder), so the figures are that disk's fsync.

Writes bench/results/log-<date>.md (also printed). Every child is stopped at the end.

Usage: .venv/bin/python bench/log_bench.py [--duration S] [--connections 8,64] [--dir PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
PY = sys.executable
MODES = ("off", "batch", "sync")
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs": {"user_id": "u0042", "n": 7}}'
function done(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(mode: str, port: int, work: Path, window: str) -> dict[str, object]:
    cfg: dict[str, object] = {
        "gateway": {"listen": f"127.0.0.1:{port}", "cache": {"path": str(work / "cache.sqlite")}},
        "backends": {"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
        "routes": {
            "echo": {
                "input": {"user_id": "str", "n": "int"},
                "deadline": "1s",
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "static", "value": {"echo": None}},
                ],
            }
        },
    }
    if mode != "off":
        cfg["log"] = {
            "enabled": True,
            "path": str(work / f"log-{mode}"),
            "durability": mode,
            "batch_window": window,
            "min_free": "1MiB",
        }
    return cfg


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def wait_live(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not become live")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (the log writer's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, lua: Path, connections: int, seconds: float) -> dict[str, float]:
    exe = shutil.which("wrk") or "/usr/bin/wrk"
    threads = 1 if connections == 1 else 2
    argv = ["taskset", "-c", "1", exe, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s"]
    argv += ["--timeout", "5s", "-s", str(lua), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    s = json.loads(line[len("WRK_JSON ") :])
    return {
        "rps": s["requests"] / (s["duration_us"] / 1e6),
        "p50_ms": s["p50_us"] / 1000,
        "p99_ms": s["p99_us"] / 1000,
        "errors": s["errors"],
    }


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and 'stream="inference"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def quantile(text: str, name: str, q: float) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` of histogram ``name`` (inference)."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{") and "inference" in line:
            le = re.search(r'le="([^"]+)"', line)
            assert le is not None
            buckets.append((float(le.group(1)), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= q * total)


def run_mode(mode: str, args: argparse.Namespace, work: Path, lua: Path) -> list[dict[str, object]]:
    port = free_port()
    path = work / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(config(mode, port, work, args.window)))
    base = f"http://127.0.0.1:{port}"
    log = (work / f"{mode}.log").open("wb")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", PY, "-m", "failwell", "serve", "-c", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rows: list[dict[str, object]] = []
    try:
        wait_live(f"{base}/health/live", proc)
        url = f"{base}/v1/predict/echo"
        wrk(url, lua, 8, 1.0)  # warm-up
        for c in args.connections:
            before = get(f"{base}/metrics")
            cpu = cpu_seconds(proc.pid)
            load = wrk(url, lua, c, args.duration)
            time.sleep(0.3)  # let the last batch land
            cpu = cpu_seconds(proc.pid) - cpu
            after = get(f"{base}/metrics")
            row: dict[str, object] = {"mode": mode, "connections": c, **load}
            requests = load["rps"] * args.duration
            row["cpu_us"] = cpu / requests * 1e6 if requests else None
            if mode != "off":
                records = (metric(after, "failwell_log_records_total") or 0) - (
                    metric(before, "failwell_log_records_total") or 0
                )
                commits = (metric(after, "failwell_log_commit_seconds_count") or 0) - (
                    metric(before, "failwell_log_commit_seconds_count") or 0
                )
                row["records_per_commit"] = records / commits if commits else None
                row["lag_p99_ms"] = _ms(quantile(after, "failwell_log_lag_seconds", 0.99))
                row["commit_p99_ms"] = _ms(quantile(after, "failwell_log_commit_seconds", 0.99))
                row["lag_max_ms"] = _ms(metric(after, "failwell_log_lag_max_seconds"))
                row["dropped"] = metric(after, "failwell_log_dropped_records_total") or 0
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(rows: list[dict[str, object]], args: argparse.Namespace, disk: str) -> str:
    lines = [
        f"# Inference log benchmark, {dt.date.today().isoformat()}",
        "",
        f"Host: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"log on {disk}. Gateway on CPU 0, wrk on CPU 1, {args.duration:g} s per cell, "
        f"batch_window {args.window}. Route: python backend (Echo), tier 1.",
        "",
        "| log | conns | req/s | CPU µs/req | p50 ms | p99 ms | errors | lag p99 ≤ ms "
        "| lag max ms | commit p99 ≤ ms | records/commit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['connections']} | {fmt(r['rps'], 0)} | {fmt(r['cpu_us'], 0)} "
            f"| {fmt(r['p50_ms'])} "
            f"| {fmt(r['p99_ms'])} | {r['errors']} | {fmt(r.get('lag_p99_ms'))} "
            f"| {fmt(r.get('lag_max_ms'))} | {fmt(r.get('commit_p99_ms'))} "
            f"| {fmt(r.get('records_per_commit'), 1)} |"
        )
    lines += [
        "",
        "CPU µs/req = the gateway process's CPU time (every thread) over the requests answered: "
        "the cost that does not depend on what else runs on the machine; req/s and latencies do.",
        "",
        "lag = time from the record being queued to its fsync returning (batch: the documented "
        "bound is batch_window + one commit). 'lag p99 ≤' is the upper edge of the histogram "
        "bucket holding the 99th percentile, over the gateway's life so far; 'lag max' is exact, "
        "also since start-up. commit = one write + fdatasync of a batch.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per cell")
    p.add_argument("--connections", default="8,64", help="comma-separated connection counts")
    p.add_argument("--window", default="50ms", help="batch_window for batch mode")
    p.add_argument("--dir", type=Path, help="where the logs go (default: a temp folder)")
    p.add_argument("--results", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="failwell-logbench-", dir=args.dir))
    lua = work / "post.lua"
    lua.write_text(LUA)
    disk = subprocess.run(
        ["df", "--output=source,fstype", str(work)], capture_output=True, text=True
    ).stdout.splitlines()[-1]
    try:
        rows = [row for mode in MODES for row in run_mode(mode, args, work, lua)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(rows, args, " ".join(disk.split()))
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"log-{dt.date.today().isoformat()}.md"
    out.write_text(text)
    print(text)
    print(f"→ {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
