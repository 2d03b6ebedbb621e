"""A concurrency limit per route with a short, bounded priority queue; beyond it, shed.

``limit`` requests run at once; up to ``queue`` more wait (interactive before batch, first
come first served within a class) for at most ``queue_timeout``. A request that finds the queue
full is shed at once with ``Overloaded`` (503 + Retry-After) — unless it outranks a queued
request, which is then shed in its place, so interactive traffic is shed last. The limit is
multiplied by ``scale()`` (the standby's share of capacity after a failover; 1.0 normally).
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable

from failwell.config.security import Priority
from failwell.errors import Overloaded

RETRY_AFTER = 1.0


def _full() -> float:
    return 1.0


class ConcurrencyLimit:
    def __init__(
        self,
        name: str,
        limit: int,
        queue: int,
        queue_timeout: float,
        scale: Callable[[], float] = _full,
    ) -> None:
        self.name = name
        self.limit = limit
        self.queue = queue
        self.queue_timeout = queue_timeout
        self.scale = scale
        self.active = 0
        self._waiting = [collections.deque[asyncio.Future[None]]() for _ in Priority]

    def capacity(self) -> int:
        return max(1, math.floor(self.limit * self.scale()))

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._waiting)

    def queue_depth(self) -> float:
        return self.queued

    def in_use(self) -> float:
        return self.active

    async def acquire(self, priority: Priority = Priority.INTERACTIVE) -> None:
        """Take a slot, waiting briefly in the queue; raise ``Overloaded`` when shed."""
        if self.active < self.capacity() and not self.queued:
            self.active += 1
            return
        if self.queued >= self.queue:
            self._shed_for(priority)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[priority.rank].append(fut)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await fut
        except TimeoutError:
            self._forget(priority, fut)
            raise self._overloaded("waited too long in the queue") from None
        except asyncio.CancelledError:
            self._forget(priority, fut)
            raise

    def _forget(self, priority: Priority, fut: asyncio.Future[None]) -> None:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self.release()  # the slot was handed over just as we gave up: pass it on
        elif fut in self._waiting[priority.rank]:
            self._waiting[priority.rank].remove(fut)

    def _shed_for(self, priority: Priority) -> None:
        for rank in range(len(self._waiting) - 1, priority.rank, -1):
            if self._waiting[rank]:
                victim = self._waiting[rank].pop()
                victim.set_exception(self._overloaded("shed for higher-priority traffic"))
                return
        raise self._overloaded("concurrency limit reached and the queue is full")

    def _overloaded(self, why: str) -> Overloaded:
        return Overloaded(f"route {self.name!r} is overloaded: {why}", RETRY_AFTER)

    def release(self) -> None:
        self.active -= 1
        capacity = self.capacity()
        for waiting in self._waiting:
            while waiting and self.active < capacity:
                fut = waiting.popleft()
                if not fut.done():
                    self.active += 1
                    fut.set_result(None)
