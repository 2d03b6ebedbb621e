"""Canary inferences: each route with a ``canary:`` section sends its canary inputs to every
tier-1 replica on a schedule and checks the outputs (exact, within a tolerance, in a range,
or having the expected keys) and the latency budget.

The latest result per route is what ``GET /health/inference`` reports: probing that endpoint
never reaches a model. A replica that fails ``down_after`` canaries in a row is taken out of
rotation (health/prober.py); it keeps being checked, and one pass brings it back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from failwell.config.models import RouteKind
from failwell.config.observe import CanaryCheck, CanaryConfig
from failwell.contracts import Adapter, Request
from failwell.errors import ConfigError, ConfigIssue, FailwellError
from failwell.health.loops import Loops
from failwell.health.prober import HealthBoard
from failwell.observe import families
from failwell.resilience.deadline import Deadline
from failwell.routing.route import Route
from failwell.routing.tiers import ModelTier


def mismatch(check: CanaryCheck, outputs: Any) -> str | None:
    """Why ``outputs`` fails the check, or None when it passes."""
    if check.keys:
        if not isinstance(outputs, dict):
            return f"expected an object with keys {list(check.keys)}"
        missing = [k for k in check.keys if k not in outputs]
        if missing:
            return f"missing keys {missing}"
    for name, (low, high) in check.range.items():
        value = outputs.get(name) if isinstance(outputs, dict) else None
        numbers = value if isinstance(value, list) else [value]
        bad = [v for v in numbers if not isinstance(v, int | float) or not low <= v <= high]
        if bad:
            return f"{name}: {bad[:3]} outside [{low}, {high}]"
    if check.expect is not None and not _same(check.expect, outputs, check.tolerance):
        return f"outputs differ from the expected {_short(check.expect)}: got {_short(outputs)}"
    return None


def _same(expected: Any, got: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return bool(expected == got)
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(expected, got, abs_tol=tolerance)
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and expected.keys() == got.keys()
            and all(_same(v, got[k], tolerance) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(expected) == len(got)
            and all(_same(e, g, tolerance) for e, g in zip(expected, got, strict=True))
        )
    return bool(expected == got)


def _short(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass(slots=True)
class CanaryResult:
    route: str
    status: str  # healthy | degraded | unhealthy
    at: float
    latency_ms: float | None
    replicas: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "at": self.at,
            "latency_ms": self.latency_ms,
            "failed": self.failed,
            "replicas": self.replicas,
        }


Canary = tuple[Route, ModelTier, CanaryConfig, list[dict[str, Any]]]


class CanaryRunner:
    """The service that runs every route's canaries through tier 1 on its schedule."""

    def __init__(self, board: HealthBoard, registry: CollectorRegistry) -> None:
        self.board = board
        self.loops: Loops[Canary] = Loops(lambda entry: self._loop(*entry), lambda _: "canary")
        self.latest: dict[str, CanaryResult] = {}
        self.status = families.CANARY_STATUS.gauge(registry)
        self.runs = families.CANARY_CHECKS.counter(registry)
        self.latency = families.CANARY_DURATION.histogram(registry)

    @classmethod
    def plan(cls, routes: Mapping[str, Route]) -> list[Canary]:
        """The canaries of ``routes``; a ConfigError names a canary that cannot run."""
        planned = []
        for name, route in routes.items():
            cfg = route.config.canary
            if cfg is None:
                continue
            tier = route.chain.tiers[0]
            if not isinstance(tier, ModelTier):
                issue = ConfigIssue(f"routes.{name}.canary", f"tier 1 ({tier.name}) is not a model")
                raise ConfigError([issue])
            inputs = [cls._inputs(route, i, c) for i, c in enumerate(cfg.checks)]
            planned.append((route, tier, cfg, inputs))
        return planned

    def bind(self, canaries: list[Canary]) -> None:
        """Run ``canaries`` from now on (a running runner restarts its loops); the latest
        result of a route that has no canary any more is dropped."""
        self.loops.replace(canaries)  # a running runner restarts on the new set
        names = {route.name for route, *_ in canaries}
        for name in list(self.latest):
            if name not in names:
                del self.latest[name]

    @property
    def routes(self) -> list[Canary]:
        return self.loops.entries

    @staticmethod
    def _inputs(route: Route, index: int, check: CanaryCheck) -> dict[str, Any]:
        if route.kind is not RouteKind.PREDICT:
            return dict(check.inputs)
        try:
            return route.decode_predict(msgspec.json.encode({"inputs": check.inputs}))
        except FailwellError as exc:
            where = f"routes.{route.name}.canary.checks[{index}].inputs"
            raise ConfigError([ConfigIssue(where, exc.message)]) from None

    async def start(self) -> None:
        self.loops.start()

    async def stop(self) -> None:
        await self.loops.stop()

    async def _loop(
        self, route: Route, tier: ModelTier, cfg: CanaryConfig, inputs: list[dict[str, Any]]
    ) -> None:
        while True:
            await self.run_once(route, tier, cfg, inputs)
            await asyncio.sleep(cfg.interval)

    async def run_once(
        self, route: Route, tier: ModelTier, cfg: CanaryConfig, inputs: list[dict[str, Any]]
    ) -> CanaryResult:
        pool = tier.pool
        members = list(pool.replicas)  # the supervisor may change the pool meanwhile
        verdicts = await asyncio.gather(
            *(self._replica(route, pool.backend, r.label, cfg, inputs) for r in members)
        )
        replicas = dict(zip((r.label for r in members), verdicts, strict=True))
        passed = [v for v in replicas.values() if v["ok"]]
        slow = [v for v in passed if v["latency_ms"] > cfg.latency_budget * 1000]
        failed = [f"{label}: {v['error']}" for label, v in replicas.items() if not v["ok"]]
        failed += [
            f"{label}: over the latency budget" for label, v in replicas.items() if v in slow
        ]
        status = "unhealthy" if not passed else ("degraded" if failed else "healthy")
        latencies = [v["latency_ms"] for v in passed]
        result = CanaryResult(
            route.name,
            status,
            time.time(),
            round(min(latencies), 3) if latencies else None,
            replicas,
            failed,
        )
        self.latest[route.name] = result
        self.status.labels(route.name).set({"healthy": 1, "degraded": 0.5}.get(status, 0))
        return result

    async def _replica(
        self,
        route: Route,
        backend: str,
        label: str,
        cfg: CanaryConfig,
        inputs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        health = self.board.get(backend, label)
        error, worst = await self._checks(route, cfg, inputs, health.replica.adapter)
        if error is None:
            health.canary_failures = 0
            health.canary = True
        else:
            health.canary_failures += 1
            health.last_error = f"canary: {error}"
            if health.canary_failures >= cfg.down_after:
                health.canary = False
        self.board.update(health, "canary")
        return {"ok": error is None, "latency_ms": round(worst * 1000, 3), "error": error}

    async def check(self, backend: str, adapter: Adapter) -> str | None:
        """Run the canaries of every route whose tier 1 is ``backend`` against ``adapter`` (a
        replica not in rotation yet: the supervisor's readiness); why it fails, or None."""
        for route, tier, cfg, inputs in self.routes:
            if tier.pool.backend == backend:
                error, _ = await self._checks(route, cfg, inputs, adapter)
                if error is not None:
                    return f"canary of route {route.name}: {error}"
        return None

    async def _checks(
        self, route: Route, cfg: CanaryConfig, inputs: list[dict[str, Any]], adapter: Adapter
    ) -> tuple[str | None, float]:
        """The route's canary checks against one adapter: the first failure and the slowest."""
        timeout = max(cfg.latency_budget * 2, 0.05)
        worst = 0.0
        error = None
        for check, values in zip(cfg.checks, inputs, strict=True):
            request = Request(
                route.name,
                values,
                Deadline(timeout),
                f"canary-{route.name}",
                "canary",
                route.schema,
            )
            started = time.perf_counter()
            try:
                result = await adapter.call(request, timeout)
            except FailwellError as exc:
                error = f"{exc.kind}: {exc.message}"
                break
            finally:
                elapsed = time.perf_counter() - started
                worst = max(worst, elapsed)
                self.latency.labels(route.name).observe(elapsed)
            error = mismatch(check, result.outputs)
            if error is not None:
                break
        self.runs.labels(route.name, "fail" if error else "pass").inc()
        return error, worst
