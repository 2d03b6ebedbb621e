"""What sharing state with a fleet costs: time per call through a pool (breaker acquire and
verdict around a fake adapter) with its breakers shared or not; CPU per request through the
whole in-process path (``Gateway.predict``: tiers, breakers, metrics, cache; noisy, as its
model runs in a thread; every request a new cache key, the worst case for the shared cache) without a fleet and with one linked to a real redis-server; the delay for a breaker opening on one instance to open it on another
(two links, each its own connections, one event loop); CPU per request on a route with
``quality:`` (a static tier: the cheapest path, so the label bookkeeping stands out) without a
fleet and with one (each answer queued for Redis, written by the link's sender); the time of a
feedback call on one gateway for an answer another served, posted at once (its batch may not be
in Redis yet) and 100 ms later.

    .venv/bin/python bench/fleet_bench.py [--requests 20000] [--rounds 5] [--openings 200]

Needs redis-server on the PATH; starts it on a free port and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.config import parse_config
from failwell.config.fleet import FleetConfig
from failwell.contracts import Request, Result
from failwell.fleet.fleet import Fleet
from failwell.gateway import Gateway
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.resilience.deadline import Deadline
from failwell.resilience.retry import RetryPolicy
from failwell.routing.pool import Pool, Replica
from failwell.testing import FakeAdapter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(fleet: str | None, share_cache: bool = True) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "gateway": {"cache": {"path": ":memory:"}},
        "backends": {"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
        "routes": {
            "echo": {
                "input": {"x": "str"},
                "cache": {"key": "{x}"},
                "tiers": [{"name": "primary", "backend": "echo"}, {"name": "cache"}],
            },
            "scored": {
                "input": {"x": "str"},
                "quality": {"metric": "accuracy", "output": "cls"},
                "tiers": [{"name": "static", "value": {"cls": 1}}],
            },
        },
    }
    if fleet is not None:
        cfg["fleet"] = {"redis": fleet, "instance": "bench", "cache": share_cache}
    return cfg


async def linked(gw: Gateway) -> None:
    if gw.fleet is not None:
        ends = time.monotonic() + 10
        while not gw.fleet.link.up and time.monotonic() < ends:
            await asyncio.sleep(0.01)
        assert gw.fleet.link.up, "the fleet link did not come up"


async def cpu_per_request(
    redis: str | None, n: int, share_cache: bool = True, route: str = "echo"
) -> float:
    """µs of this process' CPU per ``predict`` (the link's own tasks included)."""
    async with Gateway(parse_config(config(redis, share_cache))) as gw:
        await linked(gw)
        for i in range(500):
            await gw.predict(route, {"x": str(i % 100)})
        await asyncio.sleep(0.2)
        keys = time.monotonic_ns()
        start = time.process_time()
        for i in range(n):
            await gw.predict(route, {"x": f"{keys}-{i}"})  # each answer a new key: a write
        await asyncio.sleep(0.1)  # let the writers drain what these requests queued
        return (time.process_time() - start) / n * 1e6


async def label_elsewhere(url: str, labels: int, after: float) -> list[float]:
    """Seconds of one feedback call on gateway b for an answer gateway a served ``after``
    seconds before."""
    from failwell.quality.watch import Label

    def one(name: str) -> Gateway:
        cfg = config(url, False)
        cfg["fleet"]["instance"] = name
        return Gateway(parse_config(cfg))

    took = []
    async with one("a") as a, one("b") as b:
        await linked(a)
        await linked(b)
        for i in range(labels):
            rid = f"{time.monotonic_ns()}-{i}"
            await a.predict("scored", {"x": "1"}, request_id=rid)
            await asyncio.sleep(after)
            started = time.perf_counter()
            await b.quality.feedback("scored", [Label(rid, 1)])
            took.append(time.perf_counter() - started)
    return sorted(took)


async def answer(request: Any, timeout: float) -> Result:
    return Result({"y": 1})


async def pool_call(redis: str | None, n: int) -> float:
    """µs per ``Pool.call`` (breaker and all) around an adapter that answers at once."""
    pool = Pool("m", [Replica("r", FakeAdapter(answer), Breaker())], RetryPolicy(1, 0, 0), 1.0)
    fleet = None
    if redis is not None:
        fleet = Fleet(FleetConfig(redis=redis, instance="bench"), CollectorRegistry())
        fleet.bind({"m": pool})
        await fleet.link.start()
    request = Request("r", {}, Deadline(3600.0))
    try:
        for _ in range(1000):
            await pool.call(request, 1.0)
        start = time.perf_counter()
        for _ in range(n):
            await pool.call(request, 1.0)
        return (time.perf_counter() - start) / n * 1e6
    finally:
        if fleet is not None:
            await fleet.link.stop()


async def never(request: Any, timeout: float) -> Any:
    raise AssertionError


async def propagation(url: str, openings: int) -> list[float]:
    """Seconds from a breaker opening on instance a to the same breaker opening on b."""
    labels = [f"r{i}" for i in range(openings)]

    def instance(name: str) -> tuple[Fleet, dict[str, Breaker]]:
        breakers = {label: Breaker(1, 60.0, 1) for label in labels}
        replicas = [Replica(label, FakeAdapter(never), b) for label, b in breakers.items()]
        fleet = Fleet(FleetConfig(redis=url, instance=name, name="bench"), CollectorRegistry())
        fleet.bind({"m": Pool("m", replicas, RetryPolicy(1, 0, 0), 1.0)})
        return fleet, breakers

    (a, on_a), (b, on_b) = instance("a"), instance("b")
    opened: dict[str, float] = {}
    for label, breaker in on_b.items():
        breaker.on_change(
            lambda old, new, label=label: (
                opened.setdefault(label, time.perf_counter()) if new is BreakerState.OPEN else None
            )
        )
    await a.link.start()
    await b.link.start()
    ends = time.monotonic() + 10
    while not (a.link.up and b.link.up) and time.monotonic() < ends:
        await asyncio.sleep(0.01)
    delays = []
    try:
        for label in labels:
            started = time.perf_counter()
            on_a[label].record_failure()
            until = time.monotonic() + 2
            while label not in opened and time.monotonic() < until:
                await asyncio.sleep(0)
            if label in opened:
                delays.append(opened[label] - started)
            await asyncio.sleep(0.005)
    finally:
        await a.link.stop()
        await b.link.stop()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--openings", type=int, default=200)
    parser.add_argument("--labels", type=int, default=100)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", tmp]
        server = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            url = f"redis://127.0.0.1:{port}/0"
            local, shared, no_cache, pool_local, pool_shared = [], [], [], [], []
            scored: dict[bool, list[float]] = {False: [], True: []}
            for i in range(args.rounds):  # interleaved, so drift in the machine's load is shared
                pool_local.append(asyncio.run(pool_call(None, args.requests * 5)))
                pool_shared.append(asyncio.run(pool_call(url, args.requests * 5)))
                local.append(asyncio.run(cpu_per_request(None, args.requests)))
                shared.append(asyncio.run(cpu_per_request(url, args.requests)))
                no_cache.append(asyncio.run(cpu_per_request(url, args.requests, False)))
                for fleet in (False, True) if i % 2 == 0 else (True, False):  # A B, B A, ...
                    cpu = cpu_per_request(url if fleet else None, args.requests, False, "scored")
                    scored[fleet].append(asyncio.run(cpu))
            delays = sorted(asyncio.run(propagation(url, args.openings)))
            at_once = asyncio.run(label_elsewhere(url, args.labels, 0.0))
            later = asyncio.run(label_elsewhere(url, args.labels, 0.1))
        finally:
            server.terminate()
            server.wait(10)
    pl, ps = statistics.median(pool_local), statistics.median(pool_shared)
    print(f"Pool.call, breakers local:   {pl:7.2f} µs (median of {args.rounds} rounds)")
    print(f"Pool.call, breakers shared:  {ps:7.2f} µs ({ps - pl:+.2f} µs)")
    lm, sm = statistics.median(local), statistics.median(shared)
    print(f"CPU per request, no fleet:   {lm:7.1f} µs (median of {args.rounds} rounds)")
    print(f"CPU per request, fleet:      {sm:7.1f} µs ({sm - lm:+.1f} µs)")
    nm = statistics.median(no_cache)
    print(f"  the same, cache not shared: {nm:7.1f} µs ({nm - lm:+.1f} µs)")
    if delays:
        p50 = delays[len(delays) // 2] * 1000
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000
        worst = delays[-1] * 1000
        print(f"breaker propagation: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms")
    print(f"openings propagated: {len(delays)}/{args.openings}")
    qa, qb = statistics.median(scored[False]), statistics.median(scored[True])
    spread = {k: f"{min(v):.1f}-{max(v):.1f}" for k, v in scored.items()}
    print(f"CPU per request, quality route, no fleet: {qa:7.1f} µs ({spread[False]})")
    print(
        f"CPU per request, quality route, fleet:    {qb:7.1f} µs ({spread[True]}, {qb - qa:+.1f})"
    )
    for name, took in (("at once", at_once), ("100 ms later", later)):
        p50, worst = took[len(took) // 2] * 1000, took[-1] * 1000
        print(f"label of another gateway's answer, {name}: p50 {p50:.1f} ms, max {worst:.1f} ms")


if __name__ == "__main__":
    main()
