"""Load with wrk (Debian's): POST one JSON body with bench/post.lua, read its summary line."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass

from procs import Child, Children, StartError, cpu_seconds, request
from targets import BENCH

LUA = BENCH / "post.lua"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    status_errors: int  # responses with status >= 400 (wrk's summary.errors.status)
    socket_errors: int  # connect, read, write errors and timeouts

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def threads_for(connections: int) -> int:
    return 1 if connections == 1 else 2


def wrk(
    children: Children,
    name: str,
    url: str,
    body: str,
    connections: int,
    seconds: float,
    cpu: int,
    header_length: int | None = None,
) -> Load:
    """``body``: the JSON body, or "@PATH" of a file holding it; ``header_length``: the body
    is a V2 binary one (JSON header of that length, then tensor bytes)."""
    exe = shutil.which("wrk") or "/usr/bin/wrk"
    argv = [exe, f"-t{threads_for(connections)}", f"-c{connections}", f"-d{seconds:g}s"]
    argv += ["--timeout", "5s", "--latency", "-s", str(LUA), url, "--", body]
    if header_length is not None:
        argv.append(str(header_length))
    out = children.run(name, argv, cpu, timeout=seconds + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise StartError(f"{name}: no summary line in wrk's output:\n{out[-800:]}")
    s = json.loads(line[len("WRK_JSON ") :])
    return Load(
        requests=s["requests"],
        seconds=s["duration_us"] / 1e6,
        p50_ms=s["p50_us"] / 1000,
        p90_ms=s["p90_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        mean_ms=s["mean_us"] / 1000,
        max_ms=s["max_us"] / 1000,
        status_errors=s["status_errors"],
        socket_errors=s["connect_errors"] + s["read_errors"] + s["write_errors"] + s["timeouts"],
    )


def cpu_per_request(
    children: Children,
    target: Child,
    url: str,
    body: str,
    connections: int,
    seconds: float,
    cpu: int,
) -> tuple[Load, float]:
    """A 1 s warm-up, then a measured load: the load and ``target``'s CPU µs per request."""
    wrk(children, "warm-up", url, body, connections, 1, cpu)
    before = cpu_seconds(target.pgid)
    load = wrk(children, "load", url, body, connections, seconds, cpu)
    return load, (cpu_seconds(target.pgid) - before) / max(load.requests, 1) * 1e6


_SAMPLE = re.compile(r"^failwell_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def failwell_answers(port: int, route: str) -> dict[str, float]:
    """failwell's own count of answers on ``route`` so far, by 'tier/outcome'."""
    status, _, body = request(port, "GET", "/metrics", timeout=5.0)
    if status != 200:
        raise StartError(f"GET /metrics answered {status}")
    counts: dict[str, float] = {}
    for line in body.decode().splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group("labels")))
        if labels.get("route") == route:
            key = f"{labels.get('tier')}/{labels.get('outcome')}"
            counts[key] = counts.get(key, 0.0) + float(m.group("value"))
    return counts
