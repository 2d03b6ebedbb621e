"""Reloading the running gateway's config: on SIGHUP, on a change of the file, or on
POST /admin/config/reload. A new config is validated first and built beside the running one;
only then are the routes swapped, in one step between two requests. A bad config never
replaces a good one: it is rejected, logged, audited, and the gateway keeps what it runs.

How a config is applied is the gateway's business (``failwell.gateway``: the same code that
built it at start-up); this service decides when, keeps the history and audits each try.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from failwell.background import Background
from failwell.config import load_config
from failwell.config.models import FailwellConfig
from failwell.contracts import AdminCall, AdminRoute, AuditSink
from failwell.errors import ConfigError, FailwellError
from failwell.observe.logging import log
from failwell.reload.history import ConfigHistory, config_version

Apply = Callable[[FailwellConfig], Awaitable[dict[str, Any]]]


class ConfigReloader:
    """A gateway service that follows one config file."""

    def __init__(self, path: Path, apply: Apply, audit: AuditSink, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self._apply, self._audit = apply, audit
        self.history = ConfigHistory(path)
        self.text = path.read_text()
        self.version = config_version(self.text)
        self.loaded_at = time.time()
        self.last_error: list[str] = []
        self._stat = self._file_stat()
        self._lock = asyncio.Lock()
        self._task = Background("config-poll")

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
        self._task.start(self._poll())

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self._task.stop()

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
                changed = await self._apply(config)
            except ConfigError as exc:
                return self._reject(source, version, [str(i) for i in exc.issues], caller)
            except (FailwellError, OSError, ImportError, TypeError, ValueError) as exc:
                return self._reject(source, version, [f"cannot build it: {exc}"], caller)
            old, self.version, self.text = self.version, version, text
            self.loaded_at, self.last_error = time.time(), []
            self.history.record("applied", version, text, source=source, previous=old)
            detail = {"from": old, "to": version, "source": source, **changed}
            self._audit("config.reload", detail, caller)
            log.info("config_reloaded", **detail)
            return {"result": "applied", **self.status(), **changed}

    def _reject(
        self, source: str, version: str, issues: list[str], caller: str | None
    ) -> dict[str, Any]:
        self.last_error = issues
        self.history.record("rejected", version, source=source, issues=issues)
        self._audit(
            "config.reload_rejected",
            {"version": version, "source": source, "issues": issues},
            caller,
        )
        log.warning("config_rejected", version=version, source=source, issues=issues)
        return {"result": "rejected", "issues": issues, **self.status()}

    def admin_routes(self) -> list[AdminRoute]:
        """GET /admin/config (the version served) and POST /admin/config/reload."""

        async def show(call: AdminCall) -> tuple[int, Any]:
            return 200, self.status()

        async def reload(call: AdminCall) -> tuple[int, Any]:
            result = await self.reload("admin", call.exchange.caller)
            return (422 if result["result"] == "rejected" else 200), result

        return [
            AdminRoute("GET", "/admin/config", show),
            AdminRoute("POST", "/admin/config/reload", reload),
        ]
