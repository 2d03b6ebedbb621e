"""failwell's CPU per request here against another commit's, side by side: before and after a
change to the request path, on a machine too noisy for figures taken an hour apart.

Method: the bench's fast upstream (nginx, fixed answers) on CPU 1; two gateways, this tree's
and the base commit's (a git worktree, the same virtualenv and bench config), each `failwell
serve --workers 1` pinned to CPU 0 and loaded one at a time by wrk on CPU 1 (8 connections,
after a 1 s warm-up). Runs alternate base, this, this, base, ... per route; each pair gives a
ratio of CPU per request (this / base). Medians of the pairs, and every ratio, are reported:
on a shared machine the spread is part of the answer.

Usage: .venv/bin/python bench/ab_bench.py [--base REF] [--pairs 12] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from load import wrk
from procs import Child, Children, cpu_seconds, free_port, http_ok, wait_ready
from report import save_markdown
from targets import PATHS, REQUESTS, ROOT, failwell_config, start_upstream

RESULTS = ROOT / "bench" / "results"
TARGET_CPU, LOAD_CPU = 0, 1


def start(children: Children, tmp: Path, key: str, src: Path, upstream: int) -> tuple[int, Child]:
    port, home = free_port(), tmp / key
    home.mkdir()
    cfg = home / "failwell.yaml"
    cfg.write_text(failwell_config(port, upstream, home))
    argv = [str(ROOT / ".venv/bin/python"), "-m", "failwell", "serve", "--config", str(cfg)]
    child = children.start(key, [*argv, "--workers", "1"], TARGET_CPU, env={"PYTHONPATH": str(src)})
    wait_ready(child, http_ok(port, "/health/live"), timeout=60)
    return port, child


def cpu_per_request(children: Children, port: int, child: Child, route: str, secs: float) -> float:
    url = f"http://127.0.0.1:{port}{PATHS[route]}"
    wrk(children, "warm-up", url, REQUESTS[route], 8, 1, LOAD_CPU)
    before = cpu_seconds(child.pgid)
    load = wrk(children, "load", url, REQUESTS[route], 8, secs, LOAD_CPU)
    if load.errors:
        raise SystemExit(f"{child.name}: {load.errors} errors under load")
    return (cpu_seconds(child.pgid) - before) / max(load.requests, 1) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--base", default="HEAD", help="the commit to compare with (default HEAD)")
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    base = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="failwell-ab-bench-") as name:
        tmp = Path(name)
        tree = tmp / "base-tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), base],
            check=True,
        )
        children = Children(tmp)
        try:
            upstream = start_upstream(children, tmp, LOAD_CPU).port
            gateways = {
                "base": start(children, tmp, "base", tree / "src", upstream),
                "this": start(children, tmp, "this", ROOT / "src", upstream),
            }
            for route in ("chat", "v2"):
                cpu: dict[str, list[float]] = {"base": [], "this": []}
                for i in range(args.pairs):
                    for key in ("base", "this") if i % 2 == 0 else ("this", "base"):
                        port, child = gateways[key]
                        cpu[key].append(cpu_per_request(children, port, child, route, args.seconds))
                    print(f"{route} pair {i + 1}: base {cpu['base'][-1]:.1f} µs, "
                          f"this {cpu['this'][-1]:.1f} µs", flush=True)  # fmt: skip
                ratios = [t / b for b, t in zip(cpu["base"], cpu["this"], strict=True)]
                rows.append(
                    f"| {route} | {statistics.median(cpu['base']):.1f} | "
                    f"{statistics.median(cpu['this']):.1f} | {statistics.median(ratios):.3f} | "
                    f"{sum(r < 1 for r in ratios)}/{len(ratios)} | "
                    f"{' '.join(f'{r:.2f}' for r in ratios)} |"
                )
        finally:
            children.stop_all()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)])
    head = (
        f"Base {base}; this tree: {describe()}. {args.pairs} pairs of {args.seconds:g} s per "
        "route.\n\n| route | base CPU µs/req (median) | this | this/base (median of pairs) | "
        "pairs below 1 | every pair's ratio |\n| --- | ---: | ---: | ---: | ---: | --- |"
    )
    save_markdown(
        RESULTS,
        "ab",
        "CPU per request against another commit",
        __doc__,
        head + "\n" + "\n".join(rows),
    )


def describe() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
