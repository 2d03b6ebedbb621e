"""failwell's CPU per request here against another commit's, side by side: before and after a
change to the request path, on a machine too noisy for figures taken an hour apart.

Method: the bench's fast upstream (nginx, fixed answers) on CPU 1; two gateways, this tree's
and the base commit's (a git worktree, the same virtualenv and bench config), each `failwell
serve` (one process: the config has no fleet) pinned to CPU 0 and loaded one at a time by wrk
on CPU 1 (8 connections, after a 1 s warm-up). Runs alternate base, this, this, base, ... per
route; each pair gives a ratio of CPU per request (this / base). Medians of the pairs, and
every ratio, are reported: on a shared machine the spread is part of the answer.

Usage: .venv/bin/python bench/ab_bench.py [--base REF] [--pairs 12] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from load import cpu_per_request
from procs import Children
from report import save_markdown
from targets import PATHS, REQUESTS, ROOT, Target, start_failwell, start_upstream

RESULTS = ROOT / "bench" / "results"
TARGET_CPU, LOAD_CPU = 0, 1


def start(children: Children, tmp: Path, key: str, src: Path, upstream: int) -> Target:
    home = tmp / key
    home.mkdir()
    return start_failwell(children, home, upstream, TARGET_CPU, src, name=key)


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
                        gw = gateways[key]
                        url = f"http://127.0.0.1:{gw.port}{PATHS[route]}"
                        load, us = cpu_per_request(
                            children, gw.child, url, REQUESTS[route], 8, args.seconds, LOAD_CPU
                        )
                        if load.errors:
                            raise SystemExit(f"{key}: {load.errors} errors under load")
                        cpu[key].append(us)
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
