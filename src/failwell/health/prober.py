"""Active health probes per replica, and the verdict that takes a replica out of rotation.

A replica is in rotation (``Replica.healthy``) while both of its signals say so:
- liveness: a GET on the backend's health path every ``interval``; ``down_after``
  consecutive failures mark it down, ``up_after`` consecutive passes mark it up again;
- canary: ``down_after`` consecutive failed canaries (health/canary.py) mark it down, one
  pass brings it back.
The passive signal of live traffic stays with the replica's breaker; the pool needs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from failwell.backends.http import HttpUpstream, client_for
from failwell.config.backends import BackendConfig, WireProtocol
from failwell.config.observe import HealthConfig
from failwell.errors import UpstreamError, UpstreamTimeout
from failwell.health.loops import Loops
from failwell.observe import families
from failwell.observe.logging import log
from failwell.routing.pool import Pool, Replica


@dataclass(slots=True)
class ReplicaHealth:
    """The two active signals for one replica and the counts behind them."""

    backend: str
    replica: Replica
    live: bool = True
    canary: bool = True
    passes: int = 0
    failures: int = 0
    canary_failures: int = 0
    last_error: str | None = None
    last_probe: float = 0.0  # wall clock

    def apply(self) -> bool:
        """Set the replica's rotation flag; True when it changed."""
        healthy = self.live and self.canary
        changed = self.replica.healthy is not healthy
        self.replica.healthy = healthy
        return changed


class HealthBoard:
    """Every replica's ReplicaHealth, shared by the prober, the canary runner and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.replicas: dict[tuple[str, str], ReplicaHealth] = {}
        self.healthy = families.REPLICA_HEALTHY.gauge(registry)
        self.changes = families.REPLICA_HEALTH_CHANGES.counter(registry)
        # (backend, replica, healthy): told of every change of rotation (the fleet shares it)
        self.listeners: list[Callable[[str, str, bool], None]] = []

    def bind(self, pools: Mapping[str, Pool]) -> None:
        """Track the replicas of ``pools``: a replica already tracked keeps its record (a pool
        kept across a reload keeps its probe counts), a new one starts healthy."""
        old = self.replicas
        self.replicas = {}
        for name, pool in pools.items():
            for r in pool.replicas:
                known = old.get((name, r.label))
                if known is None or known.replica is not r:
                    known = ReplicaHealth(name, r)
                    self.healthy.labels(name, r.label).set(1)
                self.replicas[(name, r.label)] = known
        for backend, label in old.keys() - self.replicas.keys():
            with contextlib.suppress(KeyError):
                self.healthy.remove(backend, label)

    def get(self, backend: str, replica: str) -> ReplicaHealth:
        return self.replicas[(backend, replica)]

    def follow(self, backend: str, replica: str, healthy: bool) -> None:
        """Apply the verdict of the process that probes for the fleet (this one does not)."""
        health = self.replicas.get((backend, replica))
        if health is not None:
            health.live, health.canary = healthy, True
            self.update(health, "fleet")

    def update(self, health: ReplicaHealth, reason: str) -> None:
        if health.apply():
            for listener in self.listeners:
                listener(health.backend, health.replica.label, health.replica.healthy)
            to = "up" if health.replica.healthy else "down"
            self.healthy.labels(health.backend, health.replica.label).set(
                1 if health.replica.healthy else 0
            )
            self.changes.labels(health.backend, health.replica.label, to, reason).inc()
            log.warning(
                "replica_health_changed",
                backend=health.backend,
                replica=health.replica.label,
                to=to,
                reason=reason,
                error=health.last_error,
            )


Target = tuple[ReplicaHealth, str, HealthConfig]  # the replica, the URL probed, its policy


class HealthProber:
    """The service that probes every replica of the backends with a ``health:`` section."""

    def __init__(self, board: HealthBoard, registry: CollectorRegistry) -> None:
        self.board = board
        self.clients: dict[str, HttpUpstream] = {}  # backend → its probe client
        self.duration = families.PROBE_DURATION.histogram(registry)
        self.probes = families.PROBES.counter(registry)
        self.loops: Loops[Target] = Loops(
            lambda target: self._loop(*target), lambda target: f"probe-{target[1]}"
        )

    @property
    def targets(self) -> list[Target]:
        return self.loops.entries

    def bind(self, backends: Mapping[str, BackendConfig]) -> None:
        """Probe the replicas of ``backends`` (the board already tracks them); a running
        prober restarts its loops on the new set."""
        targets = []
        for name, bc in backends.items():
            if not bc.health.enabled or bc.protocol is WireProtocol.PYTHON:
                continue
            for rc in bc.replicas:
                targets.append((self.board.get(name, rc.label), rc.url + bc.probe_path, bc.health))
        old, self.clients = (
            self.clients,
            {name: client_for(name, bc, 2) for name, bc in backends.items()},
        )
        for client in old.values():
            client.close_idle()
        self.loops.replace(targets)  # a running prober restarts on the new set

    async def start(self) -> None:
        self.loops.start()

    async def stop(self) -> None:
        await self.loops.stop()
        for client in self.clients.values():
            client.close_idle()

    async def _loop(self, health: ReplicaHealth, url: str, cfg: HealthConfig) -> None:
        while True:
            await self.probe(health, url, cfg)
            await asyncio.sleep(cfg.interval)

    async def probe(self, health: ReplicaHealth, url: str, cfg: HealthConfig) -> bool:
        """One probe: GET ``url`` within the timeout; 2xx passes."""
        started = time.perf_counter()
        error = None
        try:
            status, _ = await self.clients[health.backend].request("GET", url, timeout=cfg.timeout)
            if status >= 300:
                error = f"HTTP {status}"
        except UpstreamTimeout:
            error = f"no answer within {cfg.timeout}s"
        except UpstreamError as exc:
            error = str(exc)
        self.duration.labels(health.backend).observe(time.perf_counter() - started)
        self.probes.labels(health.backend, "fail" if error else "pass").inc()
        health.last_probe = time.time()
        self.record(health, error, cfg)
        return error is None

    def record(self, health: ReplicaHealth, error: str | None, cfg: HealthConfig) -> None:
        """Apply one probe result: N failures to mark down, M passes to mark up."""
        if error is None:
            health.failures = 0
            health.passes += 1
            if not health.live and health.passes >= cfg.up_after:
                health.live = True
                health.last_error = None
        else:
            health.passes = 0
            health.failures += 1
            health.last_error = error
            if health.live and health.failures >= cfg.down_after:
                health.live = False
        self.board.update(health, "probe")
