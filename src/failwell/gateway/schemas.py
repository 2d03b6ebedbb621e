"""Tensor specs from the model server: a tensor route with ``source: server`` (the default of
a predict route without ``input``) reads its specs from tier 1's ``GET /v2/models/{model}``.

At start-up and on every reload the gateway makes one attempt per such route before it serves
the new routes: specs that contradict the route's declared ones are a ``ConfigError`` (start-up
fails, a reload is refused) naming the route, the tensor and both specs. A server that does
not answer leaves its route without specs (requests get 503 ``schema_unknown``, readiness
says why) and a background task retries, with backoff, until it answers.
``failwell check --probe`` makes the same attempt and prints the schema it would use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from failwell.backends.http import client_for
from failwell.background import Background
from failwell.config.models import FailwellConfig, RouteConfig
from failwell.config.tensors import SchemaSource
from failwell.errors import ConfigError, ConfigIssue, UpstreamError
from failwell.observe.logging import log
from failwell.protocols.v2meta import ServerSchema, disagreements, merged, parse_metadata
from failwell.routing.route import Route

FETCH_TIMEOUT = 3.0
RETRY_FIRST, RETRY_MAX = 0.5, 10.0


class Unreachable(Exception):
    """No replica of the backend answered the metadata request."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What one attempt learned for one route: the schema, or why there is none."""

    route: str
    schema: ServerSchema | None = None
    conflicts: tuple[str, ...] = ()
    unreachable: str | None = None


def server_routes(config: FailwellConfig) -> dict[str, RouteConfig]:
    return {
        n: r
        for n, r in config.routes.items()
        if r.tensors is not None and r.tensors.origin is SchemaSource.SERVER
    }


async def fetch(config: FailwellConfig, route: RouteConfig) -> ServerSchema:
    """Tier 1's published schema, from the first replica (in priority order) that answers;
    raises Unreachable, or ValueError for metadata a tensor route cannot take."""
    name = route.tiers[0].backend or ""
    backend = config.backends[name]
    model = backend.model or name
    client = client_for(name, backend, 1)
    errors: list[str] = []
    try:
        for replica in sorted(backend.replicas, key=lambda r: r.priority):
            url = f"{replica.url}/v2/models/{model}"
            try:
                status, body = await client.request("GET", url, timeout=FETCH_TIMEOUT)
            except UpstreamError as exc:
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            if status != 200:
                errors.append(f"{url}: answered {status}")
                continue
            try:
                return parse_metadata(body)
            except ValueError as exc:
                raise ValueError(f"{url}: {exc}") from None
    finally:
        await client.close()
    raise Unreachable("; ".join(errors) or "the backend has no replicas")


async def probe(config: FailwellConfig, name: str, route: RouteConfig) -> Probe:
    """One attempt for one route: the schema it would use, conflicts, or why it has none."""
    try:
        published = await fetch(config, route)
    except Unreachable as exc:
        return Probe(name, unreachable=str(exc))
    except ValueError as exc:
        return Probe(name, conflicts=(str(exc),))
    assert route.tensors is not None
    declared = route.tensors
    conflicts = disagreements(declared.inputs, published.inputs, "input")
    conflicts += disagreements(declared.outputs, published.outputs, "output")
    schema = ServerSchema(
        merged(declared.inputs, published.inputs), merged(declared.outputs, published.outputs)
    )
    return Probe(name, schema, tuple(conflicts))


async def probe_all(config: FailwellConfig) -> list[Probe]:
    routes = server_routes(config)
    return list(await asyncio.gather(*(probe(config, n, r) for n, r in routes.items())))


class ServerSchemas:
    """Binds server specs to the live routes: one attempt before routes are served, then a
    background retry for routes whose server did not answer."""

    def __init__(self, routes: Mapping[str, Route], config: FailwellConfig) -> None:
        self.routes, self.config = routes, config
        self._task = Background("tensor-schemas")
        self._wake = asyncio.Event()

    async def resolve(self, routes: Mapping[str, Route], config: FailwellConfig) -> None:
        """One attempt for every route of ``routes`` that takes its specs from its server;
        raises ConfigError when a server contradicts a route's declared specs."""
        issues = []
        for found in await probe_all(config):
            issues += [ConfigIssue(f"routes.{found.route}.tensors", c) for c in found.conflicts]
            self._apply(routes[found.route], found)
        if issues:
            raise ConfigError(issues)

    def bind(self, config: FailwellConfig) -> None:
        """Watch the routes of ``config`` (the live map already holds them)."""
        self.config = config
        self._wake.set()

    def _apply(self, route: Route, found: Probe) -> None:
        schema = route.tensors
        assert schema is not None
        if found.conflicts:
            schema.problem = "its model server disagrees: " + "; ".join(found.conflicts)
        elif found.unreachable is not None:
            schema.problem = f"its model server did not answer ({found.unreachable})"
        elif found.schema is not None:
            schema.bind(found.schema.inputs, found.schema.outputs)

    def _pending(self) -> dict[str, RouteConfig]:
        """Routes of the config whose specs are not known yet."""
        out = {}
        for name, config in server_routes(self.config).items():
            route = self.routes.get(name)
            if route is not None and route.tensors is not None and route.tensors.inputs is None:
                out[name] = config
        return out

    async def _retry(self) -> None:
        delay = RETRY_FIRST
        while True:
            pending = self._pending()
            if not pending:
                self._wake.clear()
                await self._wake.wait()
                delay = RETRY_FIRST
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            for name, route in self._pending().items():
                found = await probe(self.config, name, route)
                current = self.routes.get(name)
                if current is None or current.config is not route:
                    continue  # replaced by a reload meanwhile
                self._apply(current, found)
                if found.schema is not None and not found.conflicts:
                    log.info("tensor_schema_bound", route=name)
                elif found.conflicts:
                    log.error("tensor_schema_conflict", route=name, conflicts=list(found.conflicts))
            delay = min(delay * 2, RETRY_MAX)

    def readiness(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in server_routes(self.config):
            route = self.routes.get(name)
            schema = route.tensors if route is not None else None
            if schema is None:
                continue
            check: dict[str, Any] = {"ok": schema.inputs is not None}
            if schema.inputs is None:
                check["error"] = schema.problem
            out[f"schema:{name}"] = check
        return out

    async def start(self) -> None:
        await self.resolve(self.routes, self.config)
        self._task.start(self._retry())

    async def stop(self) -> None:
        await self._task.stop()
