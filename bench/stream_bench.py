"""`make bench`, streams: what failwell adds to a streamed chat answer, next to the upstream
direct and one nginx hop.

Method: an upstream (bench/stream_upstream.py, uvloop) streams 200 content chunks per request
at a fixed 5 ms gap (one ticker writes every open stream's next chunk). A client in this
process (asyncio, raw sockets) opens 1, 64 or 512 streams at once, reads each to ``[DONE]``
and records when every event arrives. Each chunk carries the time the upstream wrote it
(``time.monotonic``, one clock for the machine): its *delivery* time is arrival minus that,
and delivery through a target minus delivery direct (p50, p99) is what the target *adds* to
every chunk, hence to the gap between two chunks. The gaps between events as the client saw
them are reported too (under load the client reads several events at once: gap 0). The
target is pinned to CPU 0; the upstream and the client share CPU 1. Gateway CPU per chunk is
the target's process-group CPU time over the chunks it relayed; memory per open stream is the
growth of its RSS with 512 streams open over its RSS idle. A stall is a gap over 1 s or a
stream that did not end with ``[DONE]`` within its bound.

    python bench/stream_bench.py [--rounds N] [--src PATH] [--results DIR]

``--src`` runs failwell from another source tree (PYTHONPATH), for before/after comparisons.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import Children, StartError, accepts, cpu_seconds, free_port, http_ok, wait_ready
from targets import BENCH, ROOT, Target, render
from tensor_bench import rss_kib

TARGET_CPU, LOAD_CPU = 0, 1
CHUNKS, GAP_MS = 200, 5.0
STALL = 1.0  # seconds: a gap longer than this is a stall
STAMP = re.compile(rb'"t":"([0-9.]+)"')
BODY = json.dumps(
    {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
).encode()


@dataclass
class Cell:
    target: str
    streams: int
    gaps: list[float] = field(default_factory=list)  # seconds, every stream's
    delays: list[float] = field(default_factory=list)  # seconds from upstream write to client
    complete: int = 0
    failed: int = 0
    chunks: int = 0
    cpu: float = 0.0  # the target's CPU seconds during the cell
    rss_growth_kib: int | None = None

    def pct(self, q: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.gaps if values is None else values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def delay(self, q: float) -> float:
        return self.pct(q, self.delays)


async def one_stream(
    port: int, path: str, bound: float, delays: list[float]
) -> tuple[list[float], bool]:
    """Open one stream, read it to [DONE]; the gaps between its events, and whether complete.
    Each event's delivery time (upstream write to arrival) goes to ``delays``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), bound)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    ).encode()
    writer.write(head + BODY)
    gaps: list[float] = []
    last: float | None = None
    buffer = b""
    ends = time.monotonic() + bound
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), max(0.01, ends - time.monotonic()))
            if not data:
                return gaps, False
            now = time.monotonic()
            if last is None and not gaps and b"x-failwell-tier: " in data:
                tier = data.split(b"x-failwell-tier: ", 1)[1].split(b"\r\n", 1)[0]
                if tier != b"primary":  # a fallback's whole answer is no relayed stream
                    return gaps, False
            buffer += data
            events = buffer.count(b"\n\n")
            delays.extend(now - float(t) for t in STAMP.findall(buffer, 0, buffer.rfind(b"\n\n")))
            if events:
                for _ in range(events):
                    if last is not None:
                        gaps.append(now - last)
                    last = now
                done = b"data: [DONE]" in buffer
                buffer = buffer[buffer.rfind(b"\n\n") + 2 :]
                if done:
                    return gaps, len(gaps) >= CHUNKS  # the content, the finish and [DONE]
    except (TimeoutError, OSError) as exc:
        print("stream failed:", repr(exc), file=sys.stderr)
        return gaps, False
    finally:
        writer.transport.abort()


async def run_cell(target: Target, path: str, streams: int, rounds: int, cell: Cell) -> None:
    bound = CHUNKS * GAP_MS / 1000 * 20 + 10
    rss0 = rss_kib(target.child.pgid)
    for _ in range(rounds):
        tasks = [
            asyncio.create_task(one_stream(target.port, path, bound, cell.delays))
            for _ in range(streams)
        ]
        if streams >= 512:
            await asyncio.sleep(CHUNKS * GAP_MS / 1000 / 2)  # mid-stream: every stream open
            cell.rss_growth_kib = rss_kib(target.child.pgid) - rss0
        for gaps, complete in await asyncio.gather(*tasks):
            cell.gaps.extend(gaps)
            cell.chunks += len(gaps) + 1
            cell.complete += complete
            cell.failed += not complete


def measure(target: Target, path: str, streams: int, rounds: int) -> Cell:
    cell = Cell(target.key, streams)
    cpu0 = cpu_seconds(target.child.pgid)
    asyncio.run(run_cell(target, path, streams, rounds, cell))
    cell.cpu = cpu_seconds(target.child.pgid) - cpu0
    return cell


def failwell_config(port: int, upstream: int, tmp: Path) -> str:
    config = {
        "gateway": {"listen": f"127.0.0.1:{port}", "cache": {"path": str(tmp / "cache.sqlite")}},
        "backends": {
            "stream": {
                "protocol": "openai",
                "model": "bench-stream",
                "replicas": [{"url": f"http://127.0.0.1:{upstream}"}],
                "timeout": "30s",
                "max_connections": 1024,
            }
        },
        "routes": {
            "chat": {
                "kind": "chat",
                "deadline": "10s",
                "stream": {"first_token_timeout": "5s", "idle_timeout": "5s"},
                "tiers": [
                    {"name": "primary", "backend": "stream"},
                    {"name": "static", "value": {"content": "unavailable"}},
                ],
            }
        },
    }
    return json.dumps(config, indent=2)


def start_targets(
    children: Children, tmp: Path, key: str, upstream: int, src: Path | None
) -> Target:
    port = free_port()
    if key == "hop":
        values = {"DIR": str(tmp), "PORT": str(port), "UPSTREAM_PORT": str(upstream)}
        conf = render(BENCH / "nginx-hop.conf", tmp / "hop.conf", values)
        exe = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx"
        argv = [exe, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "hop-error.log")]
        child = children.start("hop", argv, TARGET_CPU)
        wait_ready(child, accepts(port), timeout=10)
        return Target("hop", "nginx hop", port, child, ())
    cfg = tmp / "failwell.yaml"
    cfg.write_text(failwell_config(port, upstream, tmp))
    python = ROOT / ".venv" / "bin" / "python"
    exe = str(python) if python.exists() else sys.executable
    env = {"PYTHONPATH": str(src)} if src is not None else None
    argv = [exe, "-m", "failwell", "serve", "--config", str(cfg)]
    child = children.start("failwell", argv, TARGET_CPU, env=env)
    wait_ready(child, http_ok(port, "/health/live"), timeout=60)
    return Target("failwell", "failwell", port, child, ())


def table(cells: list[Cell]) -> str:
    direct = {c.streams: c for c in cells if c.target == "direct"}
    lines = [
        "| target | streams | delivery p50 ms | delivery p99 ms | added p50 ms | added p99 ms "
        "| gap p99 ms | max gap ms | complete | CPU µs/chunk | RSS KiB/stream |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        base = direct.get(c.streams)
        p50, p99 = c.delay(0.5) * 1000, c.delay(0.99) * 1000
        added = (
            ("—", "—")
            if c.target == "direct" or base is None
            else (f"{p50 - base.delay(0.5) * 1000:+.3f}", f"{p99 - base.delay(0.99) * 1000:+.3f}")
        )
        cpu = f"{c.cpu / c.chunks * 1e6:.1f}" if c.chunks and c.target != "direct" else "—"
        rss = f"{c.rss_growth_kib / c.streams:.1f}" if c.rss_growth_kib is not None else "—"
        lines.append(
            f"| {c.target} | {c.streams} | {p50:.3f} | {p99:.3f} | {added[0]} | {added[1]} "
            f"| {c.pct(0.99) * 1000:.3f} | {max(c.gaps, default=0) * 1000:.1f} "
            f"| {c.complete}/{c.complete + c.failed} | {cpu} | {rss} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--rounds", type=int, default=2, help="rounds of streams per cell (1 stream: x5)"
    )
    p.add_argument("--streams", default="1,64,512", help="comma-separated concurrent streams")
    p.add_argument("--targets", default="direct,hop,failwell")
    p.add_argument("--src", type=Path, default=None, help="failwell source tree (PYTHONPATH)")
    p.add_argument("--results", type=Path, default=BENCH / "results", help="output folder")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    counts = [int(n) for n in args.streams.split(",")]
    os.sched_setaffinity(0, {LOAD_CPU})
    tmp = Path(tempfile.mkdtemp(prefix="failwell-stream-bench-"))
    children = Children(tmp)
    cells: list[Cell] = []
    try:
        port = free_port()
        argv_up = [sys.executable, str(BENCH / "stream_upstream.py"), str(port), str(CHUNKS)]
        upstream = children.start("stream-upstream", [*argv_up, str(GAP_MS)], LOAD_CPU)
        wait_ready(upstream, accepts(port), timeout=30)
        direct = Target("direct", "upstream direct", port, upstream, ())
        for key in args.targets.split(","):
            target = (
                direct if key == "direct" else start_targets(children, tmp, key, port, args.src)
            )
            path = "/v1/chat/completions"
            measure(target, path, 4, 1)  # warm-up
            for n in counts:
                rounds = args.rounds * 5 if n == 1 else args.rounds
                cell = measure(target, path, n, rounds)
                cells.append(cell)
                print(
                    f"  {key:9} {n:4} streams: delivery p50 {cell.delay(0.5) * 1000:7.3f} ms "
                    f"p99 {cell.delay(0.99) * 1000:7.3f} ms complete {cell.complete}/"
                    f"{cell.complete + cell.failed}",
                    file=sys.stderr,
                    flush=True,
                )
            if target is not direct:
                children.stop(target.child)
    except (StartError, OSError) as exc:
        print(f"stream bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
    stalls = [c for c in cells if c.failed or max(c.gaps, default=0) > STALL]
    notes = [
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}; the target alone on "
        f"CPU 0, the upstream and the client on CPU 1; {CHUNKS} chunks at {GAP_MS:g} ms",
        f"rounds per cell: {args.rounds} (1 stream: {args.rounds * 5} in a row); load average "
        f"at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work adds noise)",
        "stalls (a gap over 1 s or a stream without [DONE]): "
        + (", ".join(f"{c.target} at {c.streams}" for c in stalls) if stalls else "none"),
    ]
    text = table(cells) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print(text, end="")
    if not args.no_write:
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"stream-{dt.date.today().isoformat()}.md"
        out.write_text(f"# Streaming bench\n\n{text}")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
