"""What authentication and admission cost: requests/s and p99 with auth + rate limiting on
versus off, against a fast upstream (nginx answering a fixed V2 body).

Modes, each a fresh gateway on the same route (`/v1/predict/bench` → V2 upstream):
  off    no keys, no limits (the gateway as before)
  auth   100 API keys, requests carry one (SHA-256 + dict lookup + scope check)
  local  auth + a per-key rate limit and a route rate limit (GCRA in-process, limits set high
         enough never to refuse, so every request pays the full check) + a concurrency limit
  redis  as local, with the rate limits shared through a real redis-server (skipped without one)

The gateway has CPU 0 to itself; wrk and nginx (and redis) run on CPU 1. Writes
bench/results/auth-<date>.md (also printed). Every child is stopped at the end, on failure too.

Usage: .venv/bin/python bench/auth_bench.py [--duration S] [--rounds N] [--connections 8,64]
       [--modes off,auth,local,redis] [--keep-temp]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from failwell.demo.procs import ManagedProcess

BENCH = Path(__file__).resolve().parent
KEY = "bench-key-0123456789abcdefghij"
BODY = json.dumps({"inputs": {"user_id": "u1"}}, separators=(",", ":"))
UPSTREAM_ANSWER = json.dumps(
    {
        "model_name": "bench",
        "outputs": [{"name": "output", "datatype": "BYTES", "shape": [1], "data": ["ok"]}],
    },
    separators=(",", ":"),
)
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      default_type application/json;
      return 200 '{answer}';
    }}
  }}
}}
"""
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function init(args)
  wrk.body = args[1]
  if args[2] ~= nil and args[2] ~= "" then wrk.headers["Authorization"] = "Bearer " .. args[2] end
end
function done(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
MODES = ("off", "auth", "local", "redis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if shutil.which("taskset") else cmd


def gateway_config(mode: str, tmp: Path, upstream: int, redis_url: str | None) -> dict[str, Any]:
    port = free_port()
    route: dict[str, Any] = {
        "input": {"user_id": "str"},
        "deadline": "1s",
        "tiers": [{"name": "primary", "backend": "up"}, {"name": "static", "value": "x"}],
    }
    config: dict[str, Any] = {
        "gateway": {"listen": f"127.0.0.1:{port}", "cache": {"path": str(tmp / f"{mode}.db")}},
        "backends": {
            "up": {
                "protocol": "v2",
                "model": "bench",
                "timeout": "500ms",
                "replicas": [{"url": f"http://127.0.0.1:{upstream}"}],
            }
        },
        "routes": {"bench": route},
    }
    if mode == "off":
        return config
    others = [
        {"name": f"k{i}", "sha256": f"{i:064x}", "scopes": ["predict:bench"]} for i in range(99)
    ]
    config["security"] = {
        "keys": [{"name": "bench", "secret": KEY, "scopes": ["predict:bench"]}, *others]
    }
    if mode in ("local", "redis"):
        high = {"rate": 1e9, "burst": 1_000_000}
        config["security"]["key_rate"] = high
        route["admission"] = {"rate": high, "concurrency": {"limit": 1024, "queue": 64}}
    if mode == "redis":
        config["security"]["redis"] = redis_url
    return config


def wrk(url: str, connections: int, duration: float, lua: Path, key: str) -> dict[str, Any]:
    cmd = pinned(
        1,
        [
            "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(lua),
            url, "--", BODY, key,
        ],
    )  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, Any] = json.loads(line[9:])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def check(url: str, key: str) -> None:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=BODY.encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        answer = json.loads(resp.read())
    if answer.get("tier") != "primary":
        raise RuntimeError(f"the bench route did not answer from the upstream: {answer}")


def run(args: argparse.Namespace) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="failwell-auth-bench-"))
    procs: list[ManagedProcess] = []
    rows: list[tuple[str, int, dict[str, Any]]] = []
    try:
        upstream = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=upstream, answer=UPSTREAM_ANSWER))
        nginx = ManagedProcess("nginx")
        procs.append(nginx)
        nginx.start(
            pinned(
                1, [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(tmp)]
            ),
            ready_url=f"http://127.0.0.1:{upstream}/",
            timeout=20,
        )
        redis_url = None
        if "redis" in args.modes and shutil.which("redis-server"):
            rport = free_port()
            redis = ManagedProcess("redis")
            procs.append(redis)
            redis.spawn(
                pinned(
                    1, ["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"]
                ),
                ready_line="",
            )
            time.sleep(0.5)
            redis_url = f"redis://127.0.0.1:{rport}/0"
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA)
        urls: dict[str, tuple[str, str]] = {}
        for mode in args.modes:
            if mode == "redis" and redis_url is None:
                print("redis: skipped (no redis-server)", flush=True)
                continue
            config = gateway_config(mode, tmp, upstream, redis_url)
            path = tmp / f"{mode}.yaml"
            path.write_text(yaml.safe_dump(config))
            port = int(config["gateway"]["listen"].rsplit(":", 1)[1])
            gw = ManagedProcess(f"gateway-{mode}", log_file=tmp / f"{mode}.log")
            procs.append(gw)
            cmd = [sys.executable, "-m", "failwell", "serve", "-c", str(path)]
            gw.start(
                pinned(0, [*cmd, "--log-level", "warning"]),
                ready_url=f"http://127.0.0.1:{port}/health/live",
                timeout=60,
            )
            url = f"http://127.0.0.1:{port}/v1/predict/bench"
            key = "" if mode == "off" else KEY
            check(url, key)
            urls[mode] = (url, key)
        # Every gateway runs (idle ones cost nothing); rounds alternate the modes, so a burst of
        # load from elsewhere on the machine hits every mode alike. Medians over the rounds.
        samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for connections in args.connections:
                for mode, (url, key) in urls.items():
                    wrk(url, connections, 1.0, lua, key)  # warm-up
                    result = wrk(url, connections, args.duration, lua, key)
                    samples.setdefault((mode, connections), []).append(result)
                    print(
                        f"round {round_ + 1} {mode:6s} c={connections:<3d} "
                        f"{result['rps']:9.0f} req/s  p99 {result['p99_us'] / 1000:6.2f} ms",
                        flush=True,
                    )
        for (mode, connections), results in samples.items():
            rows.append((mode, connections, median_result(results)))
    finally:
        for proc in reversed(procs):
            proc.stop(grace=3)
        if not args.keep_temp:
            shutil.rmtree(tmp, ignore_errors=True)
    return report(rows, args)


def median_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in results))

    return {
        "rps": median("rps"),
        "p50_us": median("p50_us"),
        "p99_us": median("p99_us"),
        "status_errors": sum(r["status_errors"] for r in results),
        "socket_errors": sum(r["socket_errors"] for r in results),
    }


def micro() -> dict[str, float]:
    """CPU per request of the checks alone, in-process (µs): immune to a busy machine's noise
    in a way the end-to-end figures are not."""
    import asyncio
    import timeit

    from failwell.admission.concurrency import ConcurrencyLimit
    from failwell.admission.rate import Gcra
    from failwell.api.auth import KeyRing
    from failwell.api.limits import check_headers
    from failwell.api.slowclients import SlowClientWatch
    from failwell.config.security import ApiKeyConfig, RequestLimits

    keys = [ApiKeyConfig(name="bench", secret=KEY, scopes=("predict:bench",))] + [
        ApiKeyConfig(name=f"k{i}", sha256=f"{i:064x}", scopes=("predict:bench",)) for i in range(99)
    ]
    ring = KeyRing(keys)
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", b"30"),
        (b"authorization", b"Bearer " + KEY.encode()),
    ]
    limits = RequestLimits()
    gcra = Gcra()
    limit = ConcurrencyLimit("bench", 1024, 64, 0.05)
    n = 200_000

    def per_call(fn: Any) -> float:
        return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6

    watch = SlowClientWatch(10.0)

    async def in_loop() -> tuple[float, float]:
        await watch.start()
        try:
            started = time.perf_counter()
            for _ in range(n):
                await limit.acquire()
                limit.release()
            slot = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(n):
                watch.end(watch.begin())
            watched = time.perf_counter() - started
        finally:
            await watch.stop()
        return slot / n * 1e6, watched / n * 1e6

    acquire, body_watch = asyncio.run(in_loop())
    return {
        "header limits": per_call(lambda: check_headers(headers, limits)),
        "key lookup (SHA-256 + dict + compare_digest)": per_call(
            lambda: ring.authenticate(headers)
        ),
        "GCRA check": per_call(lambda: gcra.check("key:bench", 1e9, 1_000_000)),
        "concurrency slot (acquire + release)": acquire,
        "slow-client watch (paid with auth off too)": body_watch,
    }


def report(rows: list[tuple[str, int, dict[str, Any]]], args: argparse.Namespace) -> str:
    base = {c: r["rps"] for m, c, r in rows if m == "off"}
    lines = [
        f"# Auth and admission cost — {dt.date.today().isoformat()}",
        "",
        f"Host: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"gateway pinned to CPU 0, wrk + nginx upstream (+ redis) on CPU 1; {args.duration:g} s "
        f"per cell after a 1 s warm-up, {args.rounds} rounds alternating the modes, medians; "
        "`POST /v1/predict/bench` → V2 upstream (nginx, fixed body).",
        "",
        "| mode | connections | req/s | vs off | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, connections, r in rows:
        ratio = f"{r['rps'] / base[connections] * 100:.0f}%" if connections in base else "—"
        lines.append(
            f"| {mode} | {connections} | {r['rps']:.0f} | {ratio} | {r['p50_us'] / 1000:.2f} | "
            f"{r['p99_us'] / 1000:.2f} | {r['status_errors'] + r['socket_errors']} |"
        )
    costs = micro()
    lines += [
        "",
        "CPU per request of the checks alone (in-process, best of 3 runs of 200k calls):",
        "",
        "| check | µs |",
        "| --- | --- |",
        *(f"| {name} | {us:.2f} |" for name, us in costs.items()),
        f"| **total** | **{sum(costs.values()):.2f}** |",
    ]
    lines += [
        "",
        "Modes: `off` no keys or limits; `auth` 100 keys, every request carries one; `local` auth +",
        "per-key and per-route GCRA rate limits (never refusing) + a concurrency limit; `redis` the",
        "same with the rate limits in Redis (two EVALSHA round trips per request).",
        "The machine was shared with other work; compare rows of one run, not runs.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per cell")
    p.add_argument("--connections", type=lambda s: [int(c) for c in s.split(",")], default=[8, 64])
    p.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES))
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians reported")
    p.add_argument("--keep-temp", action="store_true")
    args = p.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing: run scripts/setup.sh bench", file=sys.stderr)
            return 2
    text = run(args)
    out = BENCH / "results" / f"auth-{dt.date.today().isoformat()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"\n{text}\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
