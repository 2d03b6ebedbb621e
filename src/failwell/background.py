"""One background task a component owns: started once, cancelled and awaited on stop.

Control-plane components (the lease, the fleet's SLO counts, the prober's kin) each run one loop
beside the data plane; this keeps the start/stop dance in one place."""

from __future__ import annotations

import asyncio
import contextlib
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
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
