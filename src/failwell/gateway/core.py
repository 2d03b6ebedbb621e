"""The composition root: ``build(config)`` makes every part of a gateway, and a reload makes
the parts of the new config beside the running ones through the same code, then swaps.

A ``Gateway`` is both what ``failwell serve`` runs under uvicorn (``Gateway.app``) and the
in-process Python API (``predict``), with the same tiers, breakers, cache, log and metrics.

What lives as long as the gateway (built here once): the metrics registry, the answer cache,
the inference and audit log, the fault book and flags, the health plane (probe counts, SLO
windows, alert states), admission (rate-limit state), the key ring, rollouts, the registry
watcher. What each config makes (``gateway/topology.py``): pools and routes. ``_serve`` binds
the long-lived parts to a topology: at start-up and on every reload, the same lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from failwell.admission.admit import Admission
from failwell.api.admin import AdminApi
from failwell.api.app import App
from failwell.api.auth import Guard, KeyRing
from failwell.api.drain import drain_routes
from failwell.api.limits import BodyLimits
from failwell.api.openapi import openapi
from failwell.api.responses import encode
from failwell.api.sessions import Sessions
from failwell.api.status import status_routes
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.backends import BackendConfig
from failwell.config.models import FailwellConfig
from failwell.contracts import (
    Adapter,
    AdminRoute,
    Answer,
    AuditSink,
    BeforeRespond,
    Exchange,
    Leadership,
    Observer,
    ReadinessCheck,
    Service,
)
from failwell.drift.monitor import DriftMonitor
from failwell.drift.stats import Reference
from failwell.errors import ConfigError, ConfigIssue, FailwellError, UnknownRoute
from failwell.faults.admin import FaultControl
from failwell.gateway.leading import LeaderOnly, Solo
from failwell.gateway.restart import needs_restart
from failwell.gateway.retraining import drift_follow, retrain_hooks
from failwell.gateway.schemas import ServerSchemas
from failwell.gateway.sloview import slo_admin_routes
from failwell.gateway.topology import Topology, build_replica, build_topology, python_model
from failwell.health.plane import HealthPlan, HealthPlane
from failwell.log.recorder import InferenceLog
from failwell.observe.metrics import Metrics
from failwell.observe.siblings import SiblingMetrics, Siblings
from failwell.quality.watch import QualityWatch
from failwell.registry.serving import RegistryWatcher, registry_adapter, registry_models
from failwell.reload.reloader import ConfigReloader
from failwell.retrain.loop import RetrainLoop
from failwell.rollout.admin import rollout_admin_routes
from failwell.rollout.controller import Rollouts
from failwell.routing.pool import Pool, Replica
from failwell.routing.route import Route
from failwell.store.cache import AnswerCache
from failwell.supervisor.members import Hooks
from failwell.supervisor.service import Supervisor

DRAIN_TIMEOUT = 30.0
_fingerprint = msgspec.json.Encoder(enc_hook=lambda obj: None, order="deterministic").encode

if TYPE_CHECKING:
    from failwell.fleet.fleet import Fleet


class Gateway:
    """A gateway built from one config, and rebuilt in place on reload."""

    def __init__(
        self,
        config: FailwellConfig,
        path: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        siblings: Siblings | None = None,
    ) -> None:
        self.config, self.path, self.clock = config, path, clock
        self.services: list[Service] = []
        self.observers: list[Observer] = []
        self.audit_sinks: list[AuditSink] = []
        # awaited as a response starts: of a request (not the admin API's), of an admin call
        self.before_respond: list[BeforeRespond] = []
        self.before_admin_respond: list[BeforeRespond] = []
        self.readiness_checks: list[ReadinessCheck] = []
        self.admin = AdminApi()
        self.metrics = Metrics()
        registry = self.metrics.registry
        if siblings is not None:  # one worker of many: /metrics answers for all
            self.metrics.siblings = SiblingMetrics(siblings, registry)
            self.services.append(self.metrics.siblings)
        cache = config.gateway.cache
        self.cache = AnswerCache(cache.path, cache.max_entries, clock=clock)
        # The live maps every part reads; a reload changes their contents in one step.
        self.pools: dict[str, Pool] = {}
        self.routes: dict[str, Route] = {}
        self.topology = build_topology(config, self.cache, self.metrics, clock, self._model)
        self.schemas = ServerSchemas(self.routes, config)  # tensor specs from model servers

        self.log = InferenceLog(config.log, registry) if config.log.enabled else None
        self.faults = FaultControl(
            config.control, self.routes, self.pools, self.audit, registry, clock
        )
        self.health = HealthPlane(config, self.pools, registry, clock)
        self.drift = DriftMonitor(registry, self.health.evaluator.update)
        self.quality = QualityWatch(registry, clock, self.health.evaluator.update)
        self.admission = Admission(config.security, registry, clock)
        self.keys = KeyRing(config.security.keys, clock)
        self.guard = Guard(config.security, self.keys, self.admission, Sessions(clock=clock))
        self.limits = BodyLimits.from_config(config.gateway.max_body, config.security.limits)
        self.rollouts = Rollouts(self.routes, self.pools, self.audit, registry)
        self.watcher = RegistryWatcher([], config.registry.watch, self.audit, registry)
        self.retrain = RetrainLoop(
            retrain_hooks(
                self.health.evaluator.alerts,
                self.rollouts,
                lambda action, detail: self.audit(action, detail, "retrain"),
            ),
            clock,
            path,
            registry=registry,
        )
        self.reloader = ConfigReloader(path, self.reload, self.audit) if path is not None else None
        self.fleet: Fleet | None = None
        if config.fleet is not None:  # redis (~24 MiB) only for a gateway with a fleet
            from failwell.fleet.fleet import Fleet

            self.fleet = Fleet(config.fleet, registry, clock)
        # One process of a fleet runs the control loops: the holder of the fleet's lease.
        self.leadership: Leadership = self.fleet.lease if self.fleet is not None else Solo()
        self.supervisor = Supervisor(
            Hooks(
                make_replica=self._managed_replica,
                deep_check=self.health.canaries.check,
                changed=lambda: self.health.board.bind(self.pools),
                notify=self.health.evaluator.notify,
                audit=lambda action, detail: self.audit(action, detail),
            ),
            registry,
            clock,
        )
        self._openapi = b""
        self._closing: set[asyncio.Task[None]] = set()

        admin: list[AdminRoute] = [*status_routes(self), *drain_routes(self.guard, self.audit)]
        if self.fleet is not None:
            self.services += self.fleet.services
            self.fleet.share_controls(self.faults.flags, self.faults.book)
            self.fleet.share_cache(self.cache)
            self.readiness_checks.append(self.fleet.readiness)
            self.rollouts.share(self.fleet.rollouts, self.fleet.lease, self.fleet.link.me)
            board = self.health.board
            board.listeners.append(self.fleet.share_rotation(board.follow).changed)
            self.health.evaluator.fleet = self.fleet.slo  # alerts judge the fleet's counts
            self.quality.share(self.fleet.labels, self.fleet.lease, config.alerts.evaluate_every)
        admin += self.faults.admin_routes() + rollout_admin_routes(self.rollouts)
        admin += self.supervisor.admin_routes()
        admin += slo_admin_routes(self.health.slo, self.fleet.slo if self.fleet else None)
        if self.log is not None:
            self.services += self.log.services
            self.observers.append(self.log.observe)
            self.audit_sinks.append(self.log.audit_sink)
            if self.log.holds_answers:
                self.before_respond.append(self.log.before_respond)
            if self.log.audit_sync:
                self.before_admin_respond.append(self.log.before_respond)
            self.readiness_checks.append(self.log.readiness)
            admin += self.log.admin_routes()
        self.services.insert(0, self.schemas)  # first: a conflict fails start-up early
        self.readiness_checks.append(self.schemas.readiness)
        self.services += [self.limits.watch, self.admission]
        self.services += [self._led(s) for s in self.health.services]
        # the control loops a fleet runs once (in the lease's holder); every process keeps
        # its own rollout splits (they follow the fleet's records) and registry watcher
        self.services += [self._led(self.rollouts), self.rollouts.splits, self.watcher]
        self.services.append(self._led(self.retrain))
        self.services.append(self._led(self.drift))
        if self.fleet is not None:  # the lease holder judges the fleet's labels on a schedule
            self.services.append(self._led(self.quality))
        self.observers += [*self.health.observers, self.drift, self.quality]
        admin += self.drift.admin_routes() + self.retrain.admin_routes()
        if self.faults.canary is not None:
            self.services.append(self._led(self.faults.canary))
            self.observers.append(self.faults.canary.observe)
        if self.reloader is not None:
            self.services.append(self.reloader)
            admin += self.reloader.admin_routes()
        self.services.append(self.supervisor)  # last: stopped first, before the pools close
        for route in admin:
            self.admin.add(route.method, route.path, route.handler)

        self.faults.decorate(self.topology.pools, self.topology.built, self.topology.routes)
        plan = self.health.prepare(config, self.topology.pools, self.topology.routes)
        RetrainLoop.prepare(config)
        self._switch(self.topology, plan, DriftMonitor.prepare(config.routes))
        self._started = False

    # -- building and rebuilding --------------------------------------------------------------

    def _led(self, service: Service) -> Service:
        """``service`` as a control loop: it runs in the one process that leads the fleet.
        The registry watcher and the supervisor stay in every process: each loads its own
        models and its own managed replicas."""
        if isinstance(self.leadership, Solo):
            return service
        return LeaderOnly(self.leadership, service, type(service).__name__)

    def _model(self, name: str, cfg: BackendConfig) -> Adapter:
        """The adapter of an in-process backend: from the registry with ``model_ref``."""
        if cfg.model_ref is not None:
            return registry_adapter(name, cfg, self.config.registry)
        return python_model(name, cfg)

    def _managed_replica(self, name: str, cfg: BackendConfig, url: str, label: str) -> Replica:
        """A replica the supervisor starts, built like a configured one (faults reach it too)."""
        return self.faults.wrap(
            name, build_replica(name, cfg, url, label, self.metrics, self.clock)
        )

    def _switch(
        self, topology: Topology, plan: HealthPlan, references: Mapping[str, Reference]
    ) -> None:
        """Serve ``topology`` from the next request on: no await here, so no request sees half
        of it. What can fail was checked before (``faults.decorate``, ``health.prepare``, ``DriftMonitor.prepare``)."""
        self.topology, self.config = topology, topology.config
        self.pools.clear()
        self.pools.update(topology.pools)
        self.routes.clear()
        self.routes.update(topology.routes)
        self.admission.bind(topology.config, topology.pools)
        self.keys.replace(topology.config.security.keys)
        if self.log is not None:
            self.log.bind(topology.config.routes)
        self.watcher.models = registry_models(topology.pools)
        self.watcher.interval = topology.config.registry.watch
        self.schemas.bind(topology.config)
        self.health.bind(plan)
        self.drift.bind(
            topology.config.routes, references, drift_follow(topology.config, topology.pools)
        )
        self.retrain.bind(topology.config)
        self.quality.bind(topology.config.routes)
        if self.fleet is not None:
            self.fleet.bind(topology.pools)
            self.fleet.slo.bind(self.health.slo.routes)
        self.supervisor.bind(topology.config.backends, topology.pools)
        self._openapi = encode(openapi(self.routes, self.guard.required))

    async def reload(self, config: FailwellConfig) -> dict[str, Any]:
        """Build ``config``'s parts beside the running ones, then switch. A ConfigError (with
        key paths) leaves the running gateway as it is. Keys that only a restart applies keep
        their running values and are listed under ``needs_restart``."""
        if self.rollouts.busy:
            raise ConfigError([ConfigIssue("", "a rollout is running; reload after it ends")])
        running = self.topology
        opened: list[Pool] = []
        try:  # in-process models load here: in a thread, the loop keeps serving
            topology = await asyncio.to_thread(
                build_topology,
                config,
                self.cache,
                self.metrics,
                self.clock,
                self._model,
                running,
                opened,
            )
            self.faults.decorate(topology.pools, topology.built, topology.routes)
            plan = self.health.prepare(config, topology.pools, topology.routes)
            references = await asyncio.to_thread(DriftMonitor.prepare, config.routes)
            await asyncio.to_thread(RetrainLoop.prepare, config)
            await self.schemas.resolve(topology.routes, config)  # a conflict refuses the reload
        except BaseException:
            for pool in opened:
                await close_pool(pool, 0.0)
            raise
        self._switch(topology, plan, references)
        for pool in topology.replaced(running):
            task = asyncio.get_running_loop().create_task(close_pool(pool, DRAIN_TIMEOUT))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return {
            "rebuilt": sorted(topology.built),
            "routes": sorted(topology.routes),
            "needs_restart": needs_restart(running.config, config),
        }

    # -- what the edge and the Python API use -------------------------------------------------

    @property
    def openapi(self) -> bytes:
        return self._openapi

    def app(self) -> App:
        """The ASGI application serving this gateway (uvicorn runs it)."""
        return App(self)

    def audit(self, action: str, detail: dict[str, Any], caller: str | None = None) -> None:
        """Record an admin or configuration action (a fault added, a flag flipped, a reload)."""
        for sink in self.audit_sinks:
            sink(action, detail, caller)

    async def predict(
        self, route: str, inputs: dict[str, Any], request_id: str | None = None
    ) -> Answer:
        """Answer ``inputs`` on ``route`` in-process, through the same tiers, breakers, cache,
        admission, log and metrics as an HTTP request (front end ``python``)."""
        found = self.routes.get(route)
        if found is None:
            raise UnknownRoute(f"no route named {route!r}")
        ex = Exchange(request_id or f"py-{time.monotonic_ns():x}", {}, f"python:{route}")
        ex.front_end, ex.route, ex.caller = "python", route, None
        try:
            ex.inputs = found.validate(inputs)
            slot = await self.admission.admit(route, None)
            try:
                ex.answer = await found.answer(ex.inputs, ex.request_id, "python", {})
            finally:
                if slot is not None:
                    slot.release()
            ex.status = 200
            for hook in self.before_respond:
                await hook(ex)
            return ex.answer
        except FailwellError as exc:
            ex.status, ex.error = getattr(exc, "status", 503), exc.kind
            raise
        finally:
            for observer in self.observers:
                observer(ex)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.cache.start()
        for service in self.services:
            await service.start()
        self._started = True
        config = self.config.model_dump(mode="python")
        digest = hashlib.sha256(_fingerprint(config)).hexdigest()
        self.audit("gateway.start", {"config_sha256": digest, "routes": sorted(self.routes)})

    async def close(self) -> None:
        if self._started:
            self.audit("gateway.stop", {})
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                await service.stop()
        for pool in self.pools.values():
            await close_pool(pool, 0.0)
        for task in list(self._closing):
            task.cancel()
        await self.cache.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def close_pool(pool: Pool, drain: float) -> None:
    """Close ``pool``'s adapters once its calls in flight are done (waiting at most ``drain``
    seconds)."""
    ends = time.monotonic() + drain
    while any(r.outstanding for r in pool.replicas) and time.monotonic() < ends:
        await asyncio.sleep(0.01)
    for replica in pool.replicas:
        with contextlib.suppress(Exception):
            await replica.adapter.close()


def build(
    config: FailwellConfig,
    path: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
    siblings: Siblings | None = None,
) -> Gateway:
    """Every part of a gateway for ``config`` (``path``: the file it came from, which a reload
    reads again; ``siblings``: this process is one worker of many). Nothing runs until
    ``start`` (or ``async with``)."""
    return Gateway(config, path, clock, siblings)
