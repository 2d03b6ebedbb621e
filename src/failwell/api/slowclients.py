"""Cut off clients that dribble their body: one watchdog for the whole gateway.

A timer per request (``asyncio.timeout``) costs a heap push and a cancellation on every request,
~10 µs here — more than authentication and admission together. Instead, a body read registers
its task and deadline in a dict (two dict operations), and a single task sweeps the dict a few
times per ``timeout``, cancelling reads that ran over; ``read_body`` turns that cancellation into
``SlowClient`` (408). A read is cut off between ``timeout`` and ``timeout`` + one sweep interval.
"""

from __future__ import annotations

import asyncio
import contextlib


class SlowClientWatch:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = min(0.25, timeout / 4)
        self.reading: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            for task, deadline in list(self.reading.items()):
                if deadline <= now:
                    del self.reading[task]
                    self.expired.add(task)
                    task.cancel()

    def begin(self) -> asyncio.Task[object] | None:
        """Register the current task's body read; None outside a task or without a sweeper."""
        task = asyncio.current_task()
        if task is not None and self._sweeper is not None:
            self.reading[task] = task.get_loop().time() + self.timeout
        return task

    def end(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
            self.reading.pop(task, None)

    def cut_off(self, task: asyncio.Task[object] | None) -> bool:
        """After a CancelledError: True (and the cancellation undone) when it was ours."""
        if task is not None and task in self.expired:
            self.expired.discard(task)
            task.uncancel()
            return True
        return False
