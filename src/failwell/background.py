"""One background task a component owns: started once, cancelled and awaited on stop; and
``finish``, the one way a task is cancelled and awaited.

Control-plane components (the lease, the fleet's SLO counts, the prober's kin) each run one loop
beside the data plane; this keeps the start/stop dance in one place.

A cancellation can be lost: redis-py's asyncio client drops one now and then while a command is
in flight (seen with redis-py 5.0 to 8.1: a loop cancelled mid-command ran on, in about half
of 40 tries against a real redis-server), and a task that was to stop runs on, so a shutdown
that awaits it hangs. ``finish`` asks again until the task is done."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    __slots__ = ("_task", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as this component's task (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(work, name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait for it to unwind; a no-op when it never started."""
        task, self._task = self._task, None
        if task is not None:
            await finish(task)


GRACE = 1.0  # seconds a cancelled task has to unwind (its own cleanup may await) before
AGAIN = 0.05  # it is cancelled again, every AGAIN seconds: its cancellation was lost


async def finish(task: asyncio.Task[Any], timeout: float | None = None) -> bool:
    """Cancel ``task`` and wait until it is done; when it still runs after ``GRACE`` seconds,
    cancel it again every ``AGAIN`` seconds (a lost cancellation). At most ``timeout``
    seconds when given. True when it is done; a failure of its own is raised, as
    ``await task`` would."""
    loop = asyncio.get_running_loop()
    ends = None if timeout is None else loop.time() + timeout
    wait = GRACE
    while not task.done():
        task.cancel()
        if ends is not None:
            wait = min(wait, ends - loop.time())
            if wait <= 0:
                return False
        await asyncio.wait({task}, timeout=wait)
        wait = AGAIN
    if not task.cancelled():
        task.result()
    return True
