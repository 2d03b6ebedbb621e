"""Connection slots of one upstream URL: a counting semaphore whose uncontended path is an
integer test and a decrement, with no awaiting and no allocation. (``asyncio.Semaphore``
scans its waiters with a generator on every acquire: a measurable share of a proxied
request's CPU.) Waiters are served first come, first served; a slot given to a waiter that
was cancelled meanwhile passes on to the next one."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    __slots__ = ("_waiters", "free")

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody waits for one."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot (cancellable: a slot handed over meanwhile is given back)."""
        if self.take_now():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot as the cancellation came: pass it on
            else:  # still queued (give() drops a cancelled waiter it meets)
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Give a slot back: to the first live waiter, or to the free count."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
