"""Reloading the running gateway's config: on SIGHUP, on a change of the file, or on
POST /admin/config/reload. A new config is validated first and built beside the running one;
only then are the routes swapped, in one step between two requests. A bad config never
replaces a good one: it is rejected, logged, audited, and the gateway keeps what it runs.

Backends whose config did not change keep their pool (breaker state, loaded models); replaced
pools are closed once their in-flight calls are done. The ``gateway:`` section (listener,
cache) needs a restart, and a reload waits while a rollout runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failwell.api.admin import AdminCall
from failwell.config import load_config
from failwell.config.models import FailwellConfig
from failwell.control.config_history import ConfigHistory, config_version
from failwell.control.rollout import Rollouts
from failwell.errors import ConfigError, ConfigIssue, FailwellError
from failwell.observe.logging import log
from failwell.registry.serving import RegistryModel, RegistryWatcher
from failwell.routing.assemble import build_pool
from failwell.routing.pool import Pool

if TYPE_CHECKING:
    from failwell.routing.assemble import Gateway

DRAIN_TIMEOUT = 30.0
_closing: set[asyncio.Task[None]] = set()  # pools being closed (a reference keeps the task)


async def close_pool(pool: Pool) -> None:
    """Close a pool that no route uses any more, once its calls in flight are done."""
    ends = time.monotonic() + DRAIN_TIMEOUT
    while any(r.outstanding for r in pool.replicas) and time.monotonic() < ends:
        await asyncio.sleep(0.01)
    for replica in pool.replicas:
        with contextlib.suppress(Exception):
            await replica.adapter.close()


async def swap_config(gateway: Gateway, config: FailwellConfig) -> dict[str, list[str]]:
    """Build ``config``'s pools and routes beside the running ones, then switch. Returns the
    backends rebuilt and the routes now served."""
    old_pools, old = gateway.pools, gateway.config
    kept = {n: p for n, p in old_pools.items() if old.backends.get(n) == config.backends.get(n)}
    built: dict[str, Pool] = {}
    try:
        for name, bc in config.backends.items():
            if name not in kept:  # model loading blocks: build in a thread
                built[name] = await asyncio.to_thread(
                    build_pool, name, bc, gateway.metrics, gateway.clock, config.registry
                )
        gateway.pools = {n: kept.get(n) or built[n] for n in config.backends}
        routes = {name: gateway._route(name, rc) for name, rc in config.routes.items()}
    except BaseException:
        gateway.pools = old_pools
        for pool in built.values():
            await close_pool(pool)
        raise
    # The switch: no await between these lines, so no request sees half of it.
    gateway.routes.clear()
    gateway.routes.update(routes)
    gateway.config = config
    for hook in gateway.reload_hooks:  # e.g. the API key set
        hook(config)
    loop = asyncio.get_running_loop()
    for name, pool in old_pools.items():
        if gateway.pools.get(name) is not pool:
            task = loop.create_task(close_pool(pool))
            _closing.add(task)
            task.add_done_callback(_closing.discard)
    await _follow_registry(gateway)
    return {"rebuilt": sorted(built), "routes": sorted(routes)}


async def _follow_registry(gateway: Gateway) -> None:
    models = [
        r.base
        for p in gateway.pools.values()
        for r in p.replicas
        if isinstance(r.base, RegistryModel)
    ]
    watcher = next((s for s in gateway.services if isinstance(s, RegistryWatcher)), None)
    if watcher is not None:
        watcher.models = models
        watcher.interval = gateway.config.registry.watch


class ConfigReloader:
    """A gateway service that follows one config file."""

    def __init__(self, gateway: Gateway, path: Path, interval: float = 1.0) -> None:
        self.gateway, self.path, self.interval = gateway, path, interval
        self.history = ConfigHistory(path)
        self.text = path.read_text()
        self.version = config_version(self.text)
        self.loaded_at = time.time()
        self.last_error: list[str] = []
        self._stat = self._file_stat()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def _file_stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def start(self) -> None:
        self.history.record("applied", self.version, self.text, source="start")
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload("SIGHUP")))
        self._task = loop.create_task(self._poll())

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            stat = self._file_stat()
            if stat is not None and stat != self._stat:
                self._stat = stat
                await self.reload("file change")

    def status(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "loaded_at": self.loaded_at,
            "last_error": self.last_error,
        }

    async def reload(self, source: str, caller: str | None = None) -> dict[str, Any]:
        async with self._lock:
            try:
                text = self.path.read_text()
            except OSError as exc:
                return self._reject(
                    source, "?", [f"cannot read {self.path}: {exc.strerror}"], caller
                )
            version = config_version(text)
            if version == self.version:
                return {"result": "unchanged", **self.status()}
            try:
                config = await asyncio.to_thread(load_config, self.path)
                self._check(config)
                changed = await swap_config(self.gateway, config)
            except ConfigError as exc:
                return self._reject(source, version, [str(i) for i in exc.issues], caller)
            except (FailwellError, OSError, ImportError, TypeError, ValueError) as exc:
                return self._reject(source, version, [f"cannot build it: {exc}"], caller)
            old, self.version, self.text = self.version, version, text
            self.loaded_at, self.last_error = time.time(), []
            self.history.record("applied", version, text, source=source, previous=old)
            detail = {"from": old, "to": version, "source": source, **changed}
            self.gateway.audit("config.reload", detail, caller)
            log.info("config_reloaded", **detail)
            return {"result": "applied", **self.status(), **changed}

    def _check(self, config: FailwellConfig) -> None:
        if config.gateway != self.gateway.config.gateway:
            raise ConfigError([ConfigIssue("gateway", "changes here need a restart")])
        for service in self.gateway.services:
            if isinstance(service, Rollouts) and any(
                r.task and not r.task.done() for r in service.all
            ):
                raise ConfigError([ConfigIssue("", "a rollout is running; reload after it ends")])

    def _reject(
        self, source: str, version: str, issues: list[str], caller: str | None
    ) -> dict[str, Any]:
        self.last_error = issues
        self.history.record("rejected", version, source=source, issues=issues)
        self.gateway.audit(
            "config.reload_rejected",
            {"version": version, "source": source, "issues": issues},
            caller,
        )
        log.warning("config_rejected", version=version, source=source, issues=issues)
        return {"result": "rejected", "issues": issues, **self.status()}


def attach_reloader(gateway: Gateway, path: Path) -> ConfigReloader:
    reloader = ConfigReloader(gateway, path)
    gateway.services.append(reloader)

    async def show(call: AdminCall) -> tuple[int, Any]:
        return 200, reloader.status()

    async def reload(call: AdminCall) -> tuple[int, Any]:
        result = await reloader.reload("admin", call.exchange.caller)
        return (422 if result["result"] == "rejected" else 200), result

    gateway.admin.add("GET", "/admin/config", show)
    gateway.admin.add("POST", "/admin/config/reload", reload)
    return reloader
