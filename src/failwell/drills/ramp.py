"""The autoscaling ramp: open-loop load that follows a rate profile (e.g. 10 → 400 requests/s and
back) against a gateway whose backend runs managed replicas, while the supervisor's status is
sampled twice a second; the result says when the autoscaler decided what, how many replicas
served, and the latency per second, and judges it (``ramp_analysis``); ``ramp_report`` draws it.

    config = ramp_config(8080, (9100, 9112), ".failwell/ramp-replicas", FULL)
    ... start ``failwell serve`` on it, wait for the replicas ...
    result = asyncio.run(run_ramp("http://127.0.0.1:8080", FULL, progress=print))

``bench/ramp_bench.py`` runs the full ramp; the integration suite runs ``SHORT``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from failwell.drills.load import OpenLoop
from failwell.drills.ramp_analysis import analyse_ramp

BACKEND, ROUTE = "model", "ramp"
SAMPLE_EVERY = 0.5  # seconds between two reads of the supervisor's status


@dataclass(frozen=True)
class RampPlan:
    """A rate profile (``(second, requests/s)`` points, linear between) and the replicas and
    policy it runs against."""

    profile: tuple[tuple[float, float], ...]
    slo_p99: float  # seconds; the tier-1 latency objective the scale-up must beat
    autoscale: dict[str, Any]
    service_ms: int = 20
    concurrency: int = 2  # per replica; more requests queue in the replica
    low: int = 2
    high: int = 10
    timeout: str = "800ms"
    extra: dict[str, Any] = field(default_factory=dict)  # more of the backend's managed section

    @property
    def duration(self) -> float:
        return self.profile[-1][0]

    def rate_at(self, t: float) -> float:
        """The planned rate ``t`` seconds into the ramp."""
        times = [p[0] for p in self.profile]
        i = bisect_right(times, t)
        if i == 0:
            return self.profile[0][1]
        if i == len(self.profile):
            return self.profile[-1][1]
        (t0, r0), (t1, r1) = self.profile[i - 1], self.profile[i]
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    def scaled(self, peak: float) -> RampPlan:
        """The same plan with its rates scaled so the highest is ``peak``."""
        top = max(r for _, r in self.profile)
        profile = tuple((t, r * peak / top) for t, r in self.profile)
        return dataclasses.replace(self, profile=profile)

    def falls_at(self) -> float:
        """The second the load starts falling from its peak."""
        peak = max(r for _, r in self.profile)
        return max(t for t, r in self.profile if r == peak)


FULL = RampPlan(
    profile=((0, 10), (10, 10), (70, 400), (90, 400), (100, 10), (150, 10)),
    slo_p99=0.1,
    autoscale={
        "target_in_flight": 1.0,
        "interval": "1s",
        "up_window": "2s",
        "down_window": "15s",
        "up_cooldown": "3s",
        "down_cooldown": "10s",
        "max_step_up": 2,
        "max_step_down": 2,
        "trend": {"enabled": True, "horizon": "5s", "window": "8s"},
    },
)

SHORT = RampPlan(  # the suite's: the same shape in 17 s at lower rates, windows cut to match
    profile=((0, 10), (1, 10), (8, 150), (10, 150), (11, 10), (17, 10)),
    slo_p99=0.15,
    autoscale={
        "target_in_flight": 0.6,
        "interval": "500ms",
        "up_window": "1s",
        "down_window": "3s",
        "up_cooldown": "1500ms",
        "down_cooldown": "2s",
        "max_step_up": 2,
        "max_step_down": 2,
        "trend": {"enabled": True, "horizon": "4s", "window": "3s"},
    },
    concurrency=1,
    high=5,
)


def ramp_config(
    listen: int, ports: tuple[int, int], log_dir: str, plan: RampPlan
) -> dict[str, Any]:
    """A gateway config: one route over a managed backend of demo model servers with the
    plan's service time and concurrency limit, and a static last tier."""
    command = [
        *(sys.executable, "-m", "failwell.demo.modelserver", "--port", "{port}"),
        *("--delay-ms", str(plan.service_ms), "--concurrency", str(plan.concurrency)),
    ]
    backend = {
        "protocol": "v2",
        "model": "ranker",
        "timeout": plan.timeout,
        "retry": {"attempts": 1},
        "health": {"interval": "500ms", "timeout": "400ms", "down_after": 3},
        "managed": {
            "command": command,
            "ports": list(ports),
            "log_dir": log_dir,
            "min": plan.low,
            "max": plan.high,
            "start_timeout": "30s",
            "drain": "2s",
            "stop_grace": "2s",
            "autoscale": {**plan.autoscale, "target_p99": f"{plan.slo_p99 * 1000:g}ms"},
            **plan.extra,
        },
    }
    route = {
        "input": {"x": "str"},
        "deadline": "1s",
        "tiers": [
            {"name": "primary", "backend": BACKEND},
            {"name": "static", "value": {"x": "static"}},
        ],
    }
    return {
        "gateway": {"listen": f"127.0.0.1:{listen}", "cache": {"path": ":memory:"}},
        "backends": {BACKEND: backend},
        "routes": {ROUTE: route},
    }


def _body(i: int) -> Any:
    return {"inputs": {"x": f"v{i % 1000}"}}


class StatusSampler:
    """Reads ``/admin/supervisor`` every ``SAMPLE_EVERY``: replica counts over time, and each
    scaling decision once (the status keeps the recent ones)."""

    def __init__(self, url: str, backend: str) -> None:
        self.url, self.backend = f"{url}/admin/supervisor", backend
        self.samples: list[dict[str, Any]] = []
        self.decisions: dict[tuple[float, int, int], dict[str, Any]] = {}
        self.events: dict[tuple[float, str, str], dict[str, Any]] = {}

    async def run(self, since: Callable[[], float], wall0: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                try:
                    async with session.get(self.url) as resp:
                        doc = (await resp.json())[self.backend]
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                    await asyncio.sleep(SAMPLE_EVERY)
                    continue
                states = [r["state"] for r in doc["replicas"]]
                self.samples.append(
                    {
                        "t": round(since(), 3),
                        "desired": doc["desired"],
                        **{s: states.count(s) for s in ("serving", "starting", "leaving")},
                    }
                )
                for d in doc["decisions"]:
                    key = (d["at"], d["from"], d["to"])
                    self.decisions.setdefault(key, {**d, "t": round(d["at"] - wall0, 3)})
                for e in doc["events"]:
                    mark = (e["at"], e["event"], str(e.get("replica")))
                    self.events.setdefault(mark, {**e, "t": round(e["at"] - wall0, 3)})
                await asyncio.sleep(SAMPLE_EVERY)


async def run_ramp(
    url: str, plan: RampPlan, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Play ``plan`` against the gateway at ``url`` (its config from ``ramp_config``)."""
    say = progress or (lambda line: None)
    load = OpenLoop(
        f"{url}/v1/predict/{ROUTE}", _body, plan.profile[0][1], timeout=2.0, profile=plan.rate_at
    )
    sampler = StatusSampler(url, BACKEND)
    running = asyncio.create_task(load.run())
    while load.started == 0.0:
        await asyncio.sleep(0.01)
    wall0 = time.time() - load.now()
    sampling = asyncio.create_task(sampler.run(load.now, wall0))
    try:
        for second in range(math.ceil(plan.duration)):
            await asyncio.sleep(max(0.0, second + 1 - load.now()))
            if sampler.samples:
                last = sampler.samples[-1]
                say(
                    f"{second:4d}s  {plan.rate_at(second):5.0f} req/s planned  desired "
                    f"{last['desired']}  serving {last['serving']}  starting {last['starting']}"
                )
    finally:
        load.stop()
        await asyncio.gather(running, return_exceptions=True)
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    decisions: Sequence[dict[str, Any]] = sorted(sampler.decisions.values(), key=lambda d: d["t"])
    events = sorted(sampler.events.values(), key=lambda e: e["t"])
    return analyse_ramp(plan, load.shots, sampler.samples, list(decisions), events)
