"""Instructions per request, counted by valgrind's callgrind: a figure of failwell's request
path that does not move with the machine's speed or its neighbours' load, where CPU seconds on a
shared machine move by tens of percent from one hour to the next.

Method: the bench's fast upstream (nginx, fixed answers) on CPU 1; each target alone on CPU 0
under ``valgrind --tool=callgrind --instr-atstart=no`` with PYTHONHASHSEED=0. A Python client
on CPU 1 sends a warm-up, then instrumentation is switched on (``callgrind_control -i on``), the
target idles 5 s (its timers: probes, SLO evaluation, log flushes), the count is dumped
(``callgrind_control -d``), the client sends the measured requests over 8 keep-alive
connections (8 threads; none in flight at either dump), and the count is dumped again. The idle
rate times the load's duration is taken off the second count: under valgrind a load takes
seconds, in which a gateway's timers would otherwise add a fifth to its figure. Targets:
``server alone`` and ``server + client`` (``bench/floor_app.py``, as in ``floor_bench.py``) and
``failwell serve --workers 1`` with the bench config (SLO evaluation every hour, not every 5 s:
it is no part of a request) on the chat and V2 routes, without and with the inference log
(``log: {enabled: true, durability: batch}``: the full path issue 15's CPU aim names; the
writer thread's instructions count, as they are the process's); with ``--base REF``, the
same failwell routes, without the log, from that commit (a git worktree, the same virtualenv).

SHA-256 (the log's hash chain) is counted as valgrind runs it: valgrind does not emulate the
SHA extensions, so OpenSSL takes its plain code path, where the CPU running natively would
use its SHA instructions (``sha_ni`` in ``/proc/cpuinfo``). The log's figure therefore
overstates that part; the table's note gives what the hashing took per request here
(``_hashlib_openssl_sha256``, inclusive, from the same dump).

What it counts and what it does not: user-space instructions of the target process only (the
interpreter, uvloop, httptools, the C parts of the libraries). Kernel time (the socket system
calls) is not counted: CPU seconds per request are about a constant kernel part plus these
instructions at the machine's speed. Each target runs ``--runs`` times (a fresh process each);
medians (min-max).

Usage: .venv/bin/python bench/instr_bench.py [--requests 800] [--runs 2] [--base REF]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from procs import Child, Children, StartError, accepts, free_port, wait_ready
from report import save_markdown
from targets import PATHS, REQUESTS, ROOT, failwell_config, start_upstream

BENCH = Path(__file__).resolve().parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
TARGET_CPU, LOAD_CPU = 0, 1
CONNECTIONS, WARM_UP, IDLE = 8, 200, 5.0


def send(port: int, route: str, total: int) -> int:
    """``total`` requests (rounded down to a multiple of the connections) over keep-alive
    connections, one thread each; every answer must be a 200. Returns the number sent."""
    each = total // CONNECTIONS
    body, path = REQUESTS[route].encode(), PATHS[route]
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for _ in range(each):
                conn.request("POST", path, body, {"content-type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    failures.append(f"{route}: HTTP {answer.status}")
                    return
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{route}: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if failures or any(t.is_alive() for t in threads):
        raise StartError(f"load failed: {failures[:3] or 'a client did not finish in 600 s'}")
    return each * CONNECTIONS


def control(child: Child, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(child.proc.pid)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def dump(tmp: Path, name: str, number: int) -> Path:
    out = tmp / f"{name}.callgrind.{number}"
    if not out.exists():
        raise StartError(f"{name}: callgrind wrote no dump {number}")
    return out


def sha256_instructions(out: Path) -> int:
    """Instructions spent under CPython's ``hashlib.sha256`` in a dump (inclusive)."""
    listing = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    for line in listing.splitlines():
        if line.rstrip().endswith("]") and ":_hashlib_openssl_sha256 [" in line:
            return int(line.split()[0].replace(",", ""))
    return 0


def total_instructions(out: Path) -> int:
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise StartError(f"no totals in {out}")


def measure(
    children: Children,
    tmp: Path,
    name: str,
    app: list[str],
    src: Path,
    route: str,
    port: int,
    n: int,
) -> float:
    """Instructions per request of one target started with ``app`` (listening on ``port``),
    importing failwell from ``src``."""
    out = tmp / f"{name}.callgrind"
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        *app,
    ]
    child = children.start(
        name, argv, TARGET_CPU, env={"PYTHONHASHSEED": "0", "PYTHONPATH": str(src)}
    )
    try:
        wait_ready(child, accepts(port), timeout=600)
        send(port, route, WARM_UP)
        control(child, "-i", "on")
        started = time.monotonic()
        time.sleep(IDLE)
        control(child, "-d")  # each dump zeroes the counts
        idle_rate = total_instructions(dump(tmp, name, 1)) / (time.monotonic() - started)
        started = time.monotonic()
        sent = send(port, route, n)
        loaded = time.monotonic() - started
        control(child, "-d")
        return (total_instructions(dump(tmp, name, 2)) - idle_rate * loaded) / sent
    finally:
        children.stop(child)


def failwell_app(tmp: Path, key: str, upstream: int, log: bool = False) -> tuple[list[str], int]:
    home = tmp / key
    home.mkdir(exist_ok=True)
    port = free_port()
    cfg = home / "failwell.yaml"
    config = json.loads(failwell_config(port, upstream, home))
    config["alerts"] = {"evaluate_every": "1h"}  # SLO evaluation is no part of a request
    if log:
        config["log"] = {
            "enabled": True,
            "path": str(home / "log"),
            "durability": "batch",
            "min_free": "1MiB",
        }
    cfg.write_text(json.dumps(config))
    argv = [PYTHON, "-m", "failwell", "serve", "--config", str(cfg), "--workers", "1"]
    return argv, port


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=800)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--base", help="also count this commit's failwell (a git worktree)")
    args = p.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: scripts/setup.sh bench installs it")
    counts: dict[tuple[str, str], list[float]] = {}
    sha: dict[str, list[float]] = {}  # route -> SHA-256 instructions per request, log runs
    with tempfile.TemporaryDirectory(prefix="failwell-instr-bench-") as name:
        tmp = Path(name)
        trees = [("this tree", ROOT / "src")]
        worktree = tmp / "base-tree"
        if args.base:
            base = git("rev-parse", "--short", args.base).strip()
            git("worktree", "add", "--detach", "-q", str(worktree), base)
            trees.append((base, worktree / "src"))
        # (label, route, floor_app mode, "log" or None for failwell, source tree)
        cases = [
            ("server alone", "chat", "fixed", ROOT / "src"),
            ("server + client", "chat", "proxy", ROOT / "src"),
            *(
                (f"failwell ({label})", route, None, src)
                for label, src in trees[:1]
                for route in ("chat", "v2")
            ),
            *(("failwell + batched log", route, "log", ROOT / "src") for route in ("chat", "v2")),
            *(
                (f"failwell ({label})", route, None, src)
                for label, src in trees[1:]
                for route in ("chat", "v2")
            ),
        ]
        children = Children(tmp)
        try:
            upstream = start_upstream(children, tmp, LOAD_CPU).port
            for run in range(args.runs):
                for n, (label, route, mode, src) in enumerate(cases):
                    key = f"t{run}-{n}"
                    if mode is None or mode == "log":
                        app, port = failwell_app(tmp, key, upstream, log=mode == "log")
                    else:
                        port = free_port()
                        app = [PYTHON, str(BENCH / "floor_app.py"), mode, str(port), str(upstream)]
                    ir = measure(children, tmp, key, app, src, route, port, args.requests)
                    if mode == "log":
                        sent = args.requests // CONNECTIONS * CONNECTIONS
                        hashed = sha256_instructions(dump(tmp, key, 2)) / sent
                        sha.setdefault(route, []).append(hashed)
                    print(f"{label:22} {route:4} {ir:12,.0f} instructions/request", flush=True)
                    counts.setdefault((label, route), []).append(ir)
        finally:
            children.stop_all()
            if args.base:
                git("worktree", "remove", "--force", str(worktree))
    floor = statistics.median(counts[("server alone", "chat")])

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    lines = [
        "| target | route | instructions/request | over server alone |",
        "| --- | --- | --- | ---: |",
        *(
            f"| {t} | {r} | {cell(v)} | {statistics.median(v) / floor:.2f} |"
            for (t, r), v in counts.items()
        ),
    ]
    body = (
        f"{args.runs} runs of {args.requests} measured requests per target "
        f"after {WARM_UP} warm-up.\n\n"
    )
    note = "".join(
        f"\n- failwell + batched log, {route}: of which SHA-256 as valgrind runs it "
        f"(no SHA instructions): {statistics.median(v):,.0f} per request"
        for route, v in sha.items()
    )
    save_markdown(
        ROOT / "bench" / "results",
        "instr",
        "instructions per request (callgrind)",
        __doc__,
        body + "\n".join(lines) + ("\n" + note if note else ""),
    )


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


if __name__ == "__main__":
    main()
