"""Serving in-process models from the registry, and swapping them when an alias moves.

A python backend with ``model_ref: NAME@ALIAS`` (or ``NAME@VERSION``) loads the verified
artifact and passes its path to the factory as ``model_dir``. ``RegistryWatcher`` checks the
alias every ``registry.watch``; when it moved, the new version is loaded (in a thread) and
warmed with its ``sample_inputs`` metadata while the old one keeps serving, then the adapter
reference is switched (one assignment, no request waits on it), and the old model is closed
once its in-flight calls are done. Answers name the version: ``model_version: NAME@vN``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.backends.python import PythonAdapter
from failwell.background import Background
from failwell.config.backends import BackendConfig
from failwell.config.registry import RegistryConfig
from failwell.contracts import Request, Result
from failwell.errors import ConfigError, ConfigIssue, FailwellError, RegistryError
from failwell.observe import families
from failwell.observe.logging import log
from failwell.registry import Registry, open_registry
from failwell.registry.artifacts import Version
from failwell.resilience.deadline import Deadline
from failwell.routing.pool import Pool

WARM_TIMEOUT = 10.0
DRAIN_TIMEOUT = 30.0


def load_version(
    backend: str, cfg: BackendConfig, registry: Registry, checkouts: Path, version: Version
) -> PythonAdapter:
    """Blocking: check the artifact out (verified) and build the model on it."""
    assert cfg.target is not None
    path = registry.checkout(version, checkouts)
    args = {**cfg.args, "model_dir": str(path)}
    return PythonAdapter(backend, cfg.target, args, cfg.workers, version.ref)


async def warm(adapter: PythonAdapter, version: Version) -> int:
    """Run the version's ``sample_inputs`` through it; a failure here stops the swap."""
    samples = version.meta.get("sample_inputs") or []
    for inputs in samples:
        request = Request("warmup", dict(inputs), Deadline(WARM_TIMEOUT), "warmup")
        await adapter.call(request, WARM_TIMEOUT)
    return len(samples)


async def retire(adapter: PythonAdapter) -> None:
    """Close ``adapter`` once no call is running on it (bounded)."""
    ends = time.monotonic() + DRAIN_TIMEOUT
    while adapter.busy and time.monotonic() < ends:
        await asyncio.sleep(0.01)
    await adapter.close()


@dataclass
class Swap:
    backend: str
    old: str
    new: str
    load: float
    warm: float
    switch: float
    at: float

    @property
    def total(self) -> float:
        return self.load + self.warm + self.switch


class RegistryModel:
    """The adapter of a registry-backed python backend: delegates to the loaded version."""

    def __init__(
        self, backend: str, cfg: BackendConfig, registry: Registry, checkouts: Path
    ) -> None:
        assert cfg.model_ref is not None
        self.backend, self.cfg, self.registry, self.checkouts = backend, cfg, registry, checkouts
        self.ref = cfg.model_ref
        self.version = registry.resolve(self.ref)
        self.current = load_version(backend, cfg, registry, checkouts, self.version)
        self.swaps: list[Swap] = []
        self._swapping = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def call(self, request: Request, timeout: float) -> Result:
        return await self.current.call(request, timeout)

    async def close(self) -> None:
        await self.current.close()

    async def load(self, version: Version) -> PythonAdapter:
        """Load and warm ``version`` beside the serving one (for a swap or a canary)."""
        adapter = await asyncio.to_thread(
            load_version, self.backend, self.cfg, self.registry, self.checkouts, version
        )
        try:
            await warm(adapter, version)
        except FailwellError:
            await adapter.close()
            raise
        return adapter

    async def adopt(self, version: Version, adapter: PythonAdapter) -> Swap:
        """Serve ``adapter`` (already loaded and warm, e.g. a promoted canary) from now on."""
        async with self._swapping:
            return self._switch(version, adapter, 0.0)

    def _switch(self, version: Version, adapter: PythonAdapter, load: float) -> Swap:
        """Switch to ``adapter``; retire the old one once its calls are done."""
        started = time.perf_counter()
        old, old_version = self.current, self.version
        self.current, self.version = adapter, version  # the switch: one assignment
        switch = time.perf_counter() - started
        swap = Swap(self.backend, old_version.ref, version.ref, load, 0.0, switch, time.time())
        self.swaps.append(swap)
        task = asyncio.get_running_loop().create_task(retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return swap

    async def swap_to(self, version: Version) -> Swap:
        async with self._swapping:
            started = time.perf_counter()
            adapter = await asyncio.to_thread(
                load_version, self.backend, self.cfg, self.registry, self.checkouts, version
            )
            loaded = time.perf_counter()
            try:
                await warm(adapter, version)
            except FailwellError:
                await adapter.close()
                raise
            swap = self._switch(version, adapter, loaded - started)
            swap.warm = time.perf_counter() - loaded - swap.switch
            return swap


def checkout_ref(config_path: Path, ref: str) -> tuple[Path, str]:
    """(verified local path, NAME@VERSION) of ``ref`` in the registry ``config_path`` names
    (the defaults when the file does not exist); for model servers outside the gateway."""
    from failwell.config import load_config

    config = load_config(config_path).registry if config_path.exists() else RegistryConfig()
    registry = open_registry(config)
    version = registry.resolve(ref)
    return registry.checkout(version, Path(config.checkouts)), version.ref


def registry_adapter(backend: str, cfg: BackendConfig, config: RegistryConfig) -> RegistryModel:
    """Build the adapter of a python backend with ``model_ref`` (called by ``build_pool``).
    A ref that cannot be served is a config error naming the key."""
    try:
        return RegistryModel(backend, cfg, open_registry(config), Path(config.checkouts))
    except RegistryError as exc:
        raise ConfigError([ConfigIssue(f"backends.{backend}.model_ref", exc.message)]) from None


class RegistryWatcher:
    """A gateway service: follows aliases, swaps models, exports swap time and replica lag."""

    def __init__(
        self,
        models: list[RegistryModel],
        interval: float,
        audit: Callable[[str, dict[str, Any], str | None], None],
        registry: CollectorRegistry,
    ) -> None:
        self.models, self.interval, self._audit = models, interval, audit
        self._task = Background("registry-watch")
        self.swap_seconds = families.MODEL_SWAP.gauge(registry)
        self.lag = families.REGISTRY_REPLICATION_LAG.gauge(registry)

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for model in self.models:
                try:
                    await self.check(model)
                except (FailwellError, OSError) as exc:
                    log.warning("registry_watch_failed", backend=model.backend, error=str(exc))

    async def check(self, model: RegistryModel) -> Swap | None:
        """Swap ``model`` if its alias now names another version."""
        serving = model.version
        version = await asyncio.to_thread(model.registry.resolve, model.ref)
        for lag in await asyncio.to_thread(model.registry.replicator.lag):
            self.lag.labels(lag.store).set(lag.seconds)
        if version.version == model.version.version or model.version is not serving:
            return None  # unchanged, or switched meanwhile (a promoted rollout): look again
        swap = await model.swap_to(version)
        self.swap_seconds.labels(model.backend).set(swap.total)
        self._audit(
            "registry.swap",
            {"backend": model.backend, "from": swap.old, "to": swap.new, "seconds": swap.total},
            None,
        )
        log.info("model_swapped", backend=model.backend, old=swap.old, new=swap.new)
        return swap


def registry_models(pools: Mapping[str, Pool]) -> list[RegistryModel]:
    """The registry-backed models among ``pools``' replicas."""
    return [
        r.base
        for pool in pools.values()
        for r in pool.replicas
        if isinstance(r.base, RegistryModel)
    ]
