"""The supervisor service: one ``ManagedBackend`` per backend with a ``managed:`` section, a
loop per backend (exits, canary verdicts and a load sample every ``TICK``, liveness every
``health.interval``, an autoscaling decision every ``autoscale.interval``), adoption of the previous run's replicas at start, and the admin calls.

It runs inside the gateway (a ``Service``), not as a separate ``failwell supervise`` process:
adding a replica to a pool must be one synchronous step beside the request path that reads the
pool, readiness needs the route's canaries, and the crash-loop alert goes through the gateway's
alert path. A separate process would need an API for all three and a second thing to keep
alive. docs/architecture.md says more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.backends import BackendConfig
from failwell.contracts import AdminCall, AdminRoute
from failwell.errors import InvalidInput
from failwell.observe.logging import log
from failwell.routing.pool import Pool
from failwell.supervisor import runstate
from failwell.supervisor.backend import ManagedBackend
from failwell.supervisor.members import Hooks
from failwell.supervisor.metrics import SupervisorMetrics

TICK = 0.1  # how often exits and canary verdicts are looked at


class Supervisor:
    def __init__(self, hooks: Hooks, registry: CollectorRegistry, clock: Clock = SYSTEM_CLOCK):
        self.hooks, self.clock = hooks, clock
        self.metrics = SupervisorMetrics(registry)
        self.backends: dict[str, ManagedBackend] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._leaving: set[asyncio.Task[None]] = set()
        self._running = False

    def bind(self, backends: Mapping[str, BackendConfig], pools: Mapping[str, Pool]) -> None:
        """Manage the replicas of ``backends`` with a ``managed:`` section from now on: a
        backend managed already keeps its replicas (moved into its new pool when the reload
        built one); a backend no longer managed has its replicas drained and stopped."""
        wanted = {n: bc for n, bc in backends.items() if bc.managed is not None}
        for name in list(self.backends):
            if name not in wanted:
                self._drop(name)
        for name, bc in wanted.items():
            running = self.backends.get(name)
            if running is not None:
                running.rebind(bc, pools[name])
                continue
            self.backends[name] = ManagedBackend(
                name, bc, pools[name], self.hooks, self.metrics, self.clock
            )
            if self._running:
                self._launch(name)

    def _drop(self, name: str) -> None:
        backend = self.backends.pop(name)
        loop = self._loops.pop(name, None)
        if loop is not None:
            loop.cancel()
        task = asyncio.get_running_loop().create_task(backend.stop())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    def _launch(self, name: str) -> None:
        backend = self.backends[name]
        assert backend.managed is not None
        for recorded in runstate.read(backend.state_path):
            backend.adopt(recorded)
        self._loops[name] = asyncio.get_running_loop().create_task(
            self._run(backend), name=f"supervise-{name}"
        )

    async def start(self) -> None:
        self._running = True
        for name in self.backends:
            self._launch(name)

    async def stop(self) -> None:
        self._running = False
        loops, self._loops = list(self._loops.values()), {}
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(b.stop() for b in self.backends.values()), *self._leaving)

    async def _run(self, backend: ManagedBackend) -> None:
        loop = asyncio.get_running_loop()
        next_probe = 0.0
        next_scale = loop.time() + backend.managed.autoscale.interval
        probing: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    backend.check()
                    backend.scaling.sample(
                        [m.replica for m in backend.replicas if m.state == "serving"]
                    )
                    if loop.time() >= next_scale:
                        next_scale = loop.time() + backend.managed.autoscale.interval
                        backend.autoscale()
                    if loop.time() >= next_probe and (probing is None or probing.done()):
                        next_probe = loop.time() + backend.config.health.interval
                        probing = loop.create_task(backend.liveness())
                except Exception as exc:  # keep supervising; a bug here must not stop it
                    log.error("supervisor_failed", backend=backend.name, exc_info=exc)
                await asyncio.sleep(TICK)
        finally:
            if probing is not None:
                probing.cancel()

    # -- what the edge shows ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {name: b.status() for name, b in self.backends.items()}

    def admin_routes(self) -> list[AdminRoute]:
        async def show(call: AdminCall) -> tuple[int, Any]:
            return 200, self.status()

        async def release(call: AdminCall) -> tuple[int, Any]:
            name = call.json().get("backend")
            backend = self.backends.get(name) if isinstance(name, str) else None
            if backend is None:
                raise InvalidInput(
                    f"'backend' must name a managed backend: {sorted(self.backends)}", status=404
                )
            backend.release()
            return 200, backend.status()

        return [
            AdminRoute("GET", "/admin/supervisor", show),
            AdminRoute("POST", "/admin/supervisor/release", release),
        ]
