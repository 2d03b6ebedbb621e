"""Control loops that run once per fleet: ``LeaderOnly`` starts a service while this process
leads and stops it when it stops leading. ``Solo`` is the leadership of a gateway alone (no
``fleet`` section): it always leads.

The seam is ``contracts.Leadership``: the fleet's Redis lease (``fleet/lease.py``) is one; a
control loop added later (a trainer, an autoscaler) is wrapped here or asks ``leading``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from failwell.background import finish
from failwell.contracts import Leadership, Service
from failwell.observe.logging import log


class Solo:
    """The leadership of a gateway with no fleet: always the leader."""

    @property
    def leading(self) -> bool:
        return True

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Never changes."""


class LeaderOnly:
    """``service`` runs while ``leadership`` says this process leads (a Service itself)."""

    def __init__(self, leadership: Leadership, service: Service, name: str) -> None:
        self.leadership, self.service, self.name = leadership, service, name
        self.running = False
        self._open = False  # between start and stop of the gateway
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        leadership.on_change(self._changed)

    async def start(self) -> None:
        self._open = True
        await self._follow()

    async def stop(self) -> None:
        self._open = False
        for task in list(self._pending):
            await finish(task)
        await self._follow()

    def _changed(self, leading: bool) -> None:
        if not self._open:
            return
        task = asyncio.get_running_loop().create_task(self._follow())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _follow(self) -> None:
        async with self._lock:
            want = self._open and self.leadership.leading
            if want is self.running:
                return
            if want:
                await self.service.start()
            else:
                await self.service.stop()
            self.running = want
            log.info("control_loop_" + ("started" if want else "stopped"), loop=self.name)
