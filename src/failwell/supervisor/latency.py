"""Tier-1 latency of a managed backend, for the autoscaler: each managed replica's adapter is
wrapped to time its calls into the backend's window (one ``perf_counter`` pair and a deque
append per call; only managed replicas pay it)."""

from __future__ import annotations

import time
from collections import deque

from failwell.contracts import Adapter, Request, Result


class LatencyWindow:
    """The latest call latencies (bounded), with the time each ended."""

    def __init__(self, size: int = 4096) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)
        self.count = 0  # calls ever ended: the request rate is its change over time

    def add(self, ended: float, seconds: float) -> None:
        self.samples.append((ended, seconds))
        self.count += 1

    def quantile(self, q: float, since: float) -> float | None:
        """The ``q`` quantile of the calls that ended after ``since`` (None without any)."""
        recent = sorted(s for t, s in self.samples if t >= since)
        if not recent:
            return None
        return recent[min(len(recent) - 1, int(q * len(recent)))]


class TimedAdapter:
    """An adapter whose calls are timed into a LatencyWindow (failures too: a timeout is slow)."""

    __slots__ = ("inner", "window")

    def __init__(self, inner: Adapter, window: LatencyWindow) -> None:
        self.inner, self.window = inner, window

    async def call(self, request: Request, timeout: float) -> Result:
        started = time.monotonic()
        try:
            return await self.inner.call(request, timeout)
        finally:
            ended = time.monotonic()
            self.window.add(ended, ended - started)

    async def close(self) -> None:
        await self.inner.close()
