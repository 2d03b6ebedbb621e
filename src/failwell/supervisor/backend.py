"""The replicas of one managed backend: started, made ready, placed, replaced and retired.

A replica moves ``starting → standby|serving → leaving``. It joins the pool only once ready
(its liveness probe and, when a route has one, its deep canary pass). A serving replica that
exits, fails ``down_after`` liveness probes or is taken out of rotation by its canaries leaves
the pool at once, a warm standby takes its place in the same step (no await between), and a
replacement starts after the backoff. Failures within ``restart.window`` set the backoff
(``backoff * 2^(n-1)``, capped) and, at ``restart.crash_loop``, quarantine the backend: no more
starts, an alert, until ``release`` (``restarts.Restarts``). Leaving replicas drain (no new requests; calls in flight
finish, bounded), then get SIGTERM, then SIGKILL.

Every change of the pool happens in a synchronous method; the request path only reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from failwell.clock import Clock
from failwell.config.backends import BackendConfig
from failwell.observe.logging import log
from failwell.routing.pool import Pool, Replica
from failwell.supervisor import runstate
from failwell.supervisor.autoscale import Decision
from failwell.supervisor.latency import TimedAdapter
from failwell.supervisor.members import STATES, Hooks, Managed, port_free
from failwell.supervisor.metrics import SupervisorMetrics
from failwell.supervisor.probe import Probe
from failwell.supervisor.process import ReplicaProcess
from failwell.supervisor.restarts import Restarts
from failwell.supervisor.scaling import Scaling


class ManagedBackend:
    def __init__(
        self,
        name: str,
        config: BackendConfig,
        pool: Pool,
        hooks: Hooks,
        metrics: SupervisorMetrics,
        clock: Clock,
    ) -> None:
        assert config.managed is not None
        self.name, self.config, self.pool, self.hooks = name, config, pool, hooks
        self.managed = config.managed
        self.metrics, self.clock = metrics, clock
        self.replicas: list[Managed] = []
        self.desired = self.managed.min
        self.restarts = Restarts(self.managed.restart, clock)
        self.events: deque[dict[str, Any]] = deque(maxlen=30)
        self.probe = Probe()
        self._tasks: set[asyncio.Task[None]] = set()
        self.scaling = Scaling(name, self.managed, metrics, clock)
        self.scaling.publish(self.desired)

    def _replica(self, port: int, label: str) -> Replica:
        """A replica like a configured one, its calls timed for the autoscaler."""
        replica = self.hooks.make_replica(self.name, self.config, self.managed.url(port), label)
        replica.adapter = TimedAdapter(replica.adapter, self.scaling.latency)
        return replica

    def rebind(self, config: BackendConfig, pool: Pool) -> None:
        """A reload: the new config applies from now on (replicas running another command are
        replaced one by one); a new pool gets this backend's serving replicas at once, with
        adapters made from the new config (the old pool closes once drained)."""
        assert config.managed is not None
        self.config, self.managed = config, config.managed
        self.scaling.rebind(self.managed)
        self.restarts.policy = self.managed.restart
        low = self.managed.min
        high = self.managed.max if self.managed.autoscale.enabled else low
        self.desired = min(max(self.desired, low), high)
        self.scaling.publish(self.desired)
        if pool is self.pool:
            return
        for m in self.replicas:
            if m.state != "leaving":
                m.replica = self._replica(m.port, m.replica.label)
                if m.state == "serving":
                    pool.add(m.replica)
        self.pool = pool
        self.hooks.changed()

    # -- where things are ---------------------------------------------------------------------

    @property
    def quarantined(self) -> bool:
        return self.restarts.quarantined

    @property
    def state_path(self) -> Path:
        return runstate.state_file(self.managed.log_dir, self.name)

    def log_path(self, port: int) -> Path:
        return Path(self.managed.log_dir) / f"{self.name}-{port}.log"

    def in_state(self, state: str) -> list[Managed]:
        return [m for m in self.replicas if m.state == state]

    def probe_url(self, port: int) -> str:
        return self.managed.url(port) + self.config.probe_path

    def _event(self, kind: str, **detail: Any) -> None:
        event = {"at": self.clock.wall(), "event": kind, "backend": self.name, **detail}
        self.events.appendleft(event)
        self.hooks.audit(f"supervisor.{kind}", {"backend": self.name, **detail})
        log.info(f"supervisor_{kind}", backend=self.name, **detail)

    def _export(self) -> None:
        for state in STATES:
            self.metrics.replicas.labels(self.name, state).set(len(self.in_state(state)))
        self.metrics.quarantined.labels(self.name).set(1 if self.quarantined else 0)
        runstate.write(
            self.state_path,
            [
                runstate.Recorded(m.port, m.process.pid, m.process.started, m.argv)
                for m in self.replicas
            ],
        )

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- starting and adopting ----------------------------------------------------------------

    def _free_port(self) -> int | None:
        taken = {m.port for m in self.replicas}
        first, last = self.managed.ports
        for port in range(first, last + 1):
            if port not in taken and port_free(self.managed.host, port):
                return port
        return None

    def _track(self, port: int, process: ReplicaProcess, argv: tuple[str, ...]) -> Managed:
        replica = self._replica(port, f"{self.managed.host}:{port}")
        m = Managed(port, argv, process, replica, "starting", self.clock.now())
        self.replicas.append(m)
        m.task = self._spawn(self._become_ready(m))
        return m

    def start_one(self) -> Managed | None:
        port = self._free_port()
        if port is None:
            log.warning("supervisor_no_free_port", backend=self.name, ports=self.managed.ports)
            return None
        argv = tuple(self.managed.argv(port))
        try:
            process = ReplicaProcess.spawn(argv, self.log_path(port), self.managed.env)
        except OSError as exc:
            self._failed(None, "start", f"cannot run {argv[0]!r}: {exc}")
            return None
        m = self._track(port, process, argv)
        self._event("replica_started", replica=m.replica.label, pid=process.pid)
        self._export()
        return m

    def adopt(self, recorded: runstate.Recorded) -> bool:
        """Take over a replica of a previous run: it must be alive, be the process recorded
        (start time), run the command this config gives its port, in the port range."""
        first, last = self.managed.ports
        process = ReplicaProcess.adopt(recorded.pid, recorded.started)
        if process is None:
            return False
        fits = first <= recorded.port <= last and recorded.argv == tuple(
            self.managed.argv(recorded.port)
        )
        if not fits or any(m.port == recorded.port for m in self.replicas):
            self._spawn(process.stop(self.managed.stop_grace))
            self._event("replica_orphan_stopped", port=recorded.port, pid=recorded.pid)
            return False
        m = self._track(recorded.port, process, recorded.argv)
        self._event("replica_adopted", replica=m.replica.label, pid=recorded.pid)
        self._export()
        return True

    async def _become_ready(self, m: Managed) -> None:
        ends = m.since + self.managed.start_timeout
        url = self.probe_url(m.port)
        error = "no answer yet"
        while self.clock.now() < ends:
            if not m.process.alive():
                self._failed(m, "exit", f"exited with {m.process.exit_code()} while starting")
                return
            if await self.probe(url, self.config.health.timeout):
                error = await self.hooks.deep_check(self.name, m.replica.adapter) or ""
                if not error:
                    self.metrics.ready.labels(self.name).observe(self.clock.now() - m.since)
                    self._ready(m)
                    return
            await asyncio.sleep(0.05)
        self._failed(m, "start", f"not ready within {self.managed.start_timeout}s: {error}")

    # -- placing ------------------------------------------------------------------------------

    def _ready(self, m: Managed) -> None:
        if m.state != "starting":
            return
        if len(self.in_state("serving")) < self.desired or self._stale():
            self._serve(m)
        elif len(self.in_state("standby")) < self.managed.standby:
            m.state, m.since = "standby", self.clock.now()
            self._event("replica_standby", replica=m.replica.label)
        else:
            self._retire(m, "not needed")
        self._export()

    def _serve(self, m: Managed) -> None:
        m.state, m.since = "serving", self.clock.now()
        m.replica.healthy = True
        self.pool.add(m.replica)
        self.hooks.changed()
        self._event("replica_serving", replica=m.replica.label)

    def _promote(self) -> bool:
        standby = self.in_state("standby")
        if not standby:
            return False
        self._serve(standby[0])
        return True

    def _retire(self, m: Managed, reason: str) -> None:
        """Take ``m`` out of the pool now; drain, SIGTERM, SIGKILL in the background."""
        was_in = self.pool.remove(m.replica)
        m.state, m.since = "leaving", self.clock.now()
        if was_in:
            self.hooks.changed()
        if m.task is not None and m.task is not asyncio.current_task():
            m.task.cancel()
        m.task = self._spawn(self._stop(m))
        self._event("replica_leaving", replica=m.replica.label, reason=reason)

    async def _stop(self, m: Managed) -> None:
        ends = self.clock.now() + self.managed.drain
        while m.replica.outstanding and self.clock.now() < ends and m.process.alive():
            await asyncio.sleep(0.02)
        with contextlib.suppress(Exception):
            await m.replica.adapter.close()
        await m.process.stop(self.managed.stop_grace)
        with contextlib.suppress(ValueError):
            self.replicas.remove(m)
        self._event("replica_stopped", replica=m.replica.label)
        self._export()

    # -- failing ------------------------------------------------------------------------------

    def _failed(self, m: Managed | None, reason: str, detail: str) -> None:
        """``m`` failed: out of the pool, a standby in its place (same step), stopped; the
        failure counts for the backoff and the crash-loop quarantine."""
        self.metrics.failures.labels(self.name, reason).inc()
        if m is not None:
            was_serving = m.state == "serving"
            m.replica.healthy = False
            self._retire(m, f"{reason}: {detail}")
            if was_serving and len(self.in_state("serving")) < self.desired:
                self._promote()
        wait, quarantine = self.restarts.failed()
        label = m.replica.label if m is not None else None
        self._event(
            "replica_failed", replica=label, reason=reason, detail=detail, backoff_s=round(wait, 3)
        )
        if quarantine:
            n, window = len(self.restarts.failed_at), self.managed.restart.window
            self._alert("firing", failures=n, last_reason=f"{reason}: {detail}")
            self._event("quarantined", failures=n, window_s=window)
        self._export()

    def _alert(self, state: str, **detail: Any) -> None:
        now = self.clock.wall()
        self.hooks.notify(
            {
                "alert": "failwell_replica_crash_loop",
                "state": state,
                "backend": self.name,
                "severity": "page",
                "since": now,
                "at": now,
                "logs": str(Path(self.managed.log_dir)),
                **detail,
            }
        )

    def release(self) -> None:
        """Lift a quarantine (after the cause is fixed): starts resume, failures forgotten."""
        if self.restarts.release():
            self._alert("resolved")
            self._event("released")
        self._export()

    # -- the loop -----------------------------------------------------------------------------

    def check(self) -> None:
        """One pass: notice exits and canary verdicts, then bring the counts to what is wanted."""
        for m in list(self.replicas):
            if m.state in ("serving", "standby") and not m.process.alive():
                self._failed(m, "exit", f"exited with {m.process.exit_code()}")
            elif m.state == "serving" and not m.replica.healthy:
                self._failed(m, "canary", "taken out of rotation by its canaries")
        self.reconcile()

    # -- scaling ------------------------------------------------------------------------------

    def autoscale(self) -> Decision | None:
        """One decision of the autoscaler, applied at once: the desired count changes, a
        metric, an audit record with its reason, an event in the status and the feed."""
        serving = [m.replica for m in self.replicas if m.state == "serving"]
        decision = self.scaling.decide(self.desired, len(serving))
        if decision is None:
            return None
        self.desired = decision.desired
        self._event("scale", **decision.as_json())
        self.reconcile()
        return decision

    def _stale(self) -> list[Managed]:
        """Serving replicas started with a command the config no longer gives (after a reload)."""
        return [m for m in self.in_state("serving") if m.argv != tuple(self.managed.argv(m.port))]

    def reconcile(self) -> None:
        while len(self.in_state("serving")) < self.desired and self._promote():
            pass
        serving, stale = self.in_state("serving"), self._stale()
        excess = len(serving) - self.desired
        if excess > 0:
            by_need = sorted(serving, key=lambda m: (m not in stale, m.replica.outstanding))
            for m in by_need[:excess]:
                self._retire(m, "command changed" if m in stale else "scale down")
        for m in self.in_state("standby")[self.managed.standby :]:
            self._retire(m, "standby not needed")
        want = self.desired + self.managed.standby + (1 if stale else 0)
        want -= sum(len(self.in_state(s)) for s in ("serving", "standby", "starting"))
        if want <= 0 or not self.restarts.may_start():
            return
        for _ in range(want):
            if self.start_one() is None:
                break

    async def liveness(self) -> None:
        """Probe every ready replica once; ``down_after`` failures in a row fail it."""
        ready = [m for m in self.replicas if m.state in ("serving", "standby")]
        timeout = self.config.health.timeout
        results = await asyncio.gather(
            *(self.probe(self.probe_url(m.port), timeout) for m in ready)
        )
        for m, ok in zip(ready, results, strict=True):
            m.failures = 0 if ok else m.failures + 1
            if m.state in ("serving", "standby") and m.failures >= self.config.health.down_after:
                self._failed(m, "liveness", f"{m.failures} liveness probes failed")

    async def stop(self) -> None:
        """Stop every replica (bounded drain), e.g. when the gateway stops."""
        for m in list(self.replicas):
            if m.state != "leaving":
                self._retire(m, "gateway stopping")
        tasks = list(self._tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        runstate.clear(self.state_path)
        await self.probe.close()

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "desired": self.desired,
            "min": self.managed.min,
            "max": self.managed.max,
            "standby": self.managed.standby,
            **self.restarts.status(),
            "replicas": [m.as_json(now, self.log_path(m.port)) for m in self.replicas],
            "autoscale": self.managed.autoscale.enabled,
            "decisions": list(self.scaling.decisions)[:20],
            "events": list(self.events)[:15],
        }
