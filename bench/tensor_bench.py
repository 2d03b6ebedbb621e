"""`make bench` (tensors): large binary tensors and batches through failwell, next to the same
requests sent to the upstream directly and through one nginx hop.

Cases (bodies built by tritonclient, sent by wrk from a file):
  image-bin   a [4, 3, 299, 299] FP32 batch in Triton's binary extension (4.3 MB body), to a
              tensor route with max_body 8MiB
  batch-json  a [64, 128] FP32 batch as JSON
  batch-bin   the same batch in binary

The upstream is bench/tensor_upstream.py: it reads each whole body, then answers a fixed V2
body (nginx's ``return`` answers before reading the body); failwell's tensor routes check every request
against their specs and pass the tensors upstream as they are (binary stays binary). Per cell:
req/s, p50/p99, latency added over the direct call, and CPU per request and per MiB of request
body for the two proxies (the target alone on CPU 0). Then failwell's RSS before and after at
least --rss-requests image requests (does it grow with the number served?).

Writes bench/results/tensors-<date>.md (also printed). Every child is stopped at the end.

Usage: .venv/bin/python bench/tensor_bench.py [--duration S] [--connections 1,8]
       [--rss-requests N] [--cases image-bin,...] [--targets direct,hop,failwell] [--src PATH]

``--rss-requests 0`` skips the RSS rounds; ``--cases``/``--targets`` run a subset, and
``--src`` runs failwell from another source tree (its PYTHONPATH), for alternating
before/after runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as triton
from load import Load, wrk
from procs import (
    Children,
    StartError,
    accepts,
    cpu_seconds,
    free_port,
    group_pids,
    pin_group,
    wait_ready,
)
from targets import BENCH, Target, start_failwell, start_hop

TARGET_CPU, LOAD_CPU = 0, 1
MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes
    header_length: int | None


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 3, 299, 299)).astype(np.float32)
    rows = rng.normal(size=(64, 128)).astype(np.float32)
    out = []
    for name, path, tensor_name, array, binary in (
        ("image-bin", "/v2/models/images/infer", "image", image, True),
        ("batch-json", "/v2/models/rows/infer", "x", rows, False),
        ("batch-bin", "/v2/models/rows/infer", "x", rows, True),
    ):
        tensor = triton.InferInput(tensor_name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        body, length = triton.InferenceServerClient.generate_request_body([tensor])
        out.append(Case(name, path, body, length))
    return out


@dataclass
class Row:
    case: str
    target: str
    connections: int
    load: Load
    cpu_us: float
    body_bytes: int

    @property
    def cpu_ms_per_mib(self) -> float:
        return self.cpu_us / 1000 / (self.body_bytes / MIB)


def start_upstream(children: Children, cpu: int) -> Target:
    port = free_port()
    argv = [sys.executable, str(BENCH / "tensor_upstream.py"), str(port)]
    child = children.start("tensor-upstream", argv, cpu)
    wait_ready(child, accepts(port), timeout=30)
    return Target("direct", "upstream direct", port, child, ())


def rss_kib(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def check(target: Target, case: Case) -> None:
    """One request, checked; raises StartError when the answer is wrong."""
    conn_headers = {"content-type": "application/json"}
    if case.header_length is not None:
        conn_headers["inference-header-content-length"] = str(case.header_length)
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        conn.request("POST", case.path, body=case.body, headers=conn_headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200 or b'"score"' not in body:
        raise StartError(f"{target.label} {case.name}: {resp.status} {body[:300]!r}")
    tier = resp.getheader("x-failwell-tier")
    if target.key == "failwell" and tier != "primary":
        raise StartError(f"{target.label} {case.name}: answered by {tier!r}")


def measure(
    children: Children, target: Target, case: Case, file: Path, conns: int, seconds: float
) -> Row:
    url = f"http://127.0.0.1:{target.port}{case.path}"
    name = f"wrk-{target.key}-{case.name}-c{conns}"
    body = f"@{file}"
    wrk(children, f"{name}-warmup", url, body, conns, 1.0, LOAD_CPU, case.header_length)
    cpu0 = cpu_seconds(target.child.pgid)
    load = wrk(children, name, url, body, conns, seconds, LOAD_CPU, case.header_length)
    cpu = cpu_seconds(target.child.pgid) - cpu0
    cpu_us = cpu / load.requests * 1e6 if load.requests else float("nan")
    return Row(case.name, target.key, conns, load, cpu_us, len(case.body))


def markdown(rows: list[Row], rss: list[tuple[int, int]] | None, notes: list[str]) -> str:
    direct = {(r.case, r.connections): r.load.p50_ms for r in rows if r.target == "direct"}
    lines = [
        "# Tensor benchmark",
        "",
        *[f"- {n}" for n in notes],
        "",
        "| case | target | conns | req/s | p50 ms | p99 ms | added p50 ms | CPU µs/req | CPU ms/MiB | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        added = r.load.p50_ms - direct.get((r.case, r.connections), float("nan"))
        own = r.target != "direct"
        lines.append(
            f"| {r.case} | {r.target} | {r.connections} | {r.load.rps:,.0f} | "
            f"{r.load.p50_ms:.3f} | {r.load.p99_ms:.3f} | "
            f"{f'{added:.3f}' if own else '—'} | {f'{r.cpu_us:,.0f}' if own else '—'} | "
            f"{f'{r.cpu_ms_per_mib:.2f}' if own else '—'} | {r.load.errors} |"
        )
    if rss is not None:
        points = ", ".join(f"{kib / 1024:.1f} MiB after {n:,}" for n, kib in rss)
        lines += ["", f"failwell RSS by image-bin requests served after the cells: {points}."]
    return "\n".join(lines) + "\n"


def grow(
    children: Children, target: Target, image: Case, file: Path, rows: list[Row], args: Any
) -> list[tuple[int, int]]:
    """failwell's RSS (KiB) after warm-up, then after each of 3 rounds of image requests that
    together make at least ``args.rss_requests``: (requests served so far, RSS)."""
    rate = max(r.load.rps for r in rows if r.target == "failwell" and r.case == image.name)
    seconds = float(min(100, int(args.rss_requests / 3 / max(rate, 1.0) * 1.2) + 2))
    url = f"http://127.0.0.1:{target.port}{image.path}"
    samples = [(0, rss_kib(target.child.pgid))]
    for n in range(3):
        load = wrk(
            children, f"wrk-rss-{n}", url, f"@{file}", 8, seconds, LOAD_CPU, image.header_length
        )
        samples.append((samples[-1][0] + load.requests, rss_kib(target.child.pgid)))
    return samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured cell")
    p.add_argument("--connections", default="1,8", help="comma-separated connection counts")
    p.add_argument("--rss-requests", type=int, default=10_000, help="image requests for RSS")
    p.add_argument("--results", type=Path, default=BENCH / "results", help="output folder")
    p.add_argument("--cases", default="image-bin,batch-json,batch-bin", help="cases to run")
    p.add_argument("--targets", default="direct,hop,failwell", help="targets to measure")
    p.add_argument("--out", default=None, help="result file name (default tensors-<date>.md)")
    p.add_argument("--src", type=Path, default=None, help="failwell source tree (PYTHONPATH)")
    args = p.parse_args(argv)
    connections = [int(c) for c in args.connections.split(",")]
    chosen = [c for c in cases() if c.name in args.cases.split(",")]
    targets = [t for t in ("direct", "hop", "failwell") if t in args.targets.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="failwell-tensor-bench-"))
    children = Children(tmp)
    rows: list[Row] = []
    rss: list[tuple[int, int]] | None = None
    files = {}
    for case in cases():
        files[case.name] = tmp / f"{case.name}.body"
        files[case.name].write_bytes(case.body)
    try:
        upstream = start_upstream(children, TARGET_CPU)
        for case in chosen:
            check(upstream, case)
        for key in targets:
            if key == "direct":
                target = upstream
            else:
                pin_group(upstream.child.pgid, LOAD_CPU)
                if key == "hop":
                    target = start_hop(children, tmp, upstream.port, TARGET_CPU)
                else:
                    target = start_failwell(children, tmp, upstream.port, TARGET_CPU, args.src)
            for case in chosen:
                check(target, case)
                for conns in connections:
                    row = measure(children, target, case, files[case.name], conns, args.duration)
                    rows.append(row)
                    print(
                        f"  {case.name:10} {key:8} c={conns:<2} {row.load.rps:8,.0f} req/s "
                        f"p50 {row.load.p50_ms:8.3f} ms  CPU {row.cpu_us:8,.0f} µs/req",
                        file=sys.stderr,
                        flush=True,
                    )
            if key == "failwell" and args.rss_requests > 0 and chosen[0].name == "image-bin":
                rss = grow(children, target, cases()[0], files["image-bin"], rows, args)
            if key != "direct":
                children.stop(target.child)
    except (StartError, OSError) as exc:
        print(f"tensor bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
    notes = [
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}; the target alone on "
        "CPU 0, wrk and the upstream on CPU 1; the upstream (bench/tensor_upstream.py, uvloop) "
        "reads each whole body, then answers a fixed V2 body",
        "the hop: nginx with client_body_buffer_size 16m (bodies in memory), keepalive upstream",
        "failwell: tensor routes (declared specs, every request checked), tensor_data mirror",
        f"{args.duration:g} s per cell after 1 s of warm-up; load average at the end "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work on the machine adds noise)",
    ]
    text = markdown(rows, rss, notes)
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / (args.out or f"tensors-{dt.date.today().isoformat()}.md")
    out.write_text(text)
    print(text, end="")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
