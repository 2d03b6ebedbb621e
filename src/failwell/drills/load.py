"""Open-loop load for drills: requests leave at a constant rate (or one that follows a profile,
requests/s by second) whatever the answers take, so a slow gateway shows up as latency and
timeouts, never as fewer requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Shot:
    sent: float  # seconds since the load started
    latency: float
    status: int  # 0: no HTTP answer (timeout, connection error)
    tier: str | None


class OpenLoop:
    def __init__(
        self,
        url: str,
        body: Callable[[int], Any],
        rate: float,
        timeout: float = 2.0,
        profile: Callable[[float], float] | None = None,
    ) -> None:
        self.url, self.body, self.rate, self.timeout = url, body, rate, timeout
        self.profile = profile  # the rate at a second since the start; None: ``rate`` throughout
        self.shots: list[Shot] = []
        self.started = 0.0  # monotonic
        self._stop = asyncio.Event()
        self._pending: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self.started

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Send until ``stop()``, then wait for the answers still out (bounded by the timeout)."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.started = time.monotonic()
            i, due = 0, self.started
            while not self._stop.is_set():
                wait = due - time.monotonic()
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), wait)
                        break
                    except TimeoutError:
                        pass
                task = asyncio.create_task(self._one(session, i, due))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                i += 1
                rate = self.rate if self.profile is None else self.profile(due - self.started)
                due += 1 / max(rate, 0.1)
            if self._pending:
                await asyncio.wait(self._pending, timeout=self.timeout + 1.0)

    async def _one(self, session: aiohttp.ClientSession, i: int, due: float) -> None:
        sent = time.monotonic()
        status, tier = 0, None
        try:
            async with session.post(self.url, json=self.body(i)) as resp:
                await resp.read()
                status, tier = resp.status, resp.headers.get("x-failwell-tier")
        except (aiohttp.ClientError, TimeoutError):
            pass
        # Latency counts from when the request was due, so a stalled sender cannot hide it.
        self.shots.append(Shot(due - self.started, time.monotonic() - min(due, sent), status, tier))
