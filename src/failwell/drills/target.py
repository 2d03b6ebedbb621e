"""What a drill acts on: a running gateway (faults and flags through its admin API, network
faults through the drill's own fault proxies), and remembers what it did so ``restore`` can
undo it. The demo target adds process faults (``drill_demo``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from failwell.drills.proxy import FaultProxy, NetworkFault
from failwell.drills.spec import MANAGED, Action, Drill, ProcessSignal, is_managed

_FALLBACK = re.compile(r"^failwell_fallbacks_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
SIGNALS = {
    ProcessSignal.KILL: signal.SIGKILL,
    ProcessSignal.STOP: signal.SIGSTOP,
    ProcessSignal.CONT: signal.SIGCONT,
}
_LABEL = re.compile(r'(\w+)="([^"]*)"')


class DrillError(RuntimeError):
    """The drill could not act on its target (the admin API refused, a process is unknown)."""


class GatewayTarget:
    def __init__(self, url: str, drill: Drill) -> None:
        self.url = url.rstrip("/")
        self.drill = drill
        self.proxies: dict[str, FaultProxy] = {}
        self._session: aiohttp.ClientSession | None = None
        self._faults: list[str] = []
        self._flags: dict[str, bool] = {}  # target → state before the drill touched it
        self._stopped: set[int] = set()  # pids the drill froze

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for name, p in self.drill.proxies.items():
            host, _, port = p.upstream.rpartition(":")
            lhost, _, lport = p.listen.rpartition(":")
            proxy = FaultProxy((host, int(port)), (lhost, int(lport)))
            await proxy.start()
            self.proxies[name] = proxy

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()
        if self._session is not None:
            await self._session.close()

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None
        async with self._session.request(method, self.url + path, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise DrillError(f"{method} {path} answered {resp.status}: {data}")
            return data

    async def tiers(self, route: str) -> list[str]:
        status = await self.admin("GET", "/admin/status")
        try:
            return [t["name"] for t in status["routes"][route]["tiers"]]
        except KeyError:
            raise DrillError(f"the gateway has no route {route!r}") from None

    async def fallbacks(self, route: str) -> dict[str, dict[str, int]]:
        """failwell_fallbacks_total for ``route``: tier → error → count."""
        assert self._session is not None
        async with self._session.get(self.url + "/metrics") as resp:
            text = await resp.text()
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for labels, value in _FALLBACK.findall(text):
            found = dict(_LABEL.findall(labels))
            if found.get("route") == route:
                out[found["from_tier"]][found["error"]] = int(float(value))
        return dict(out)

    async def apply(self, action: Action) -> None:
        if action.restore:
            await self.restore()
        elif action.gateway is not None:
            body = {"duration": "1h", **action.gateway}
            fault = (await self.admin("POST", "/admin/faults", body))["fault"]
            self._faults.append(fault["id"])
        elif action.flag is not None:
            if action.flag not in self._flags:
                flags = (await self.admin("GET", "/admin/flags"))["flags"]
                self._flags[action.flag] = bool(flags.get(action.flag, True))
            await self.admin("POST", "/admin/flags", {"target": action.flag, "on": action.enabled})
        elif action.network is not None:
            assert action.proxy is not None
            try:
                self.proxies[action.proxy].set(NetworkFault.parse(action.network))
            except ValueError as exc:
                raise DrillError(f"proxy {action.proxy}: {exc}") from None
        else:
            await self._signal_local(action)

    async def _signal_local(self, action: Action) -> None:
        assert action.process is not None
        sig = SIGNALS.get(action.process)
        if sig is None:
            raise DrillError(f"this target cannot {action.describe()}")
        for name in action.replicas:
            pid = await self._managed_pid(name) if is_managed(name) else self._pid(name)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                raise DrillError(f"process {name} (pid {pid}) is not running") from None
            if sig == signal.SIGSTOP:
                self._stopped.add(pid)
            elif sig == signal.SIGCONT:
                self._stopped.discard(pid)

    async def _managed_pid(self, name: str) -> int:
        """``managed:BACKEND``: the first serving replica the gateway's supervisor runs for
        BACKEND now (its pid changes with each replacement, so it is looked up each time)."""
        backend = name.removeprefix(MANAGED)
        doc = (await self.admin("GET", "/admin/supervisor")).get(backend)
        serving = [r for r in (doc or {}).get("replicas", []) if r["state"] == "serving"]
        if not serving:
            raise DrillError(f"{name}: no serving replica of managed backend {backend!r}")
        return int(serving[0]["pid"])

    def _pid(self, name: str) -> int:
        ref = self.drill.processes[name]
        if ref.pid is not None:
            return ref.pid
        assert ref.pidfile is not None
        try:
            return int(Path(ref.pidfile).read_text().strip())
        except (OSError, ValueError) as exc:
            raise DrillError(f"process {name}: cannot read {ref.pidfile}: {exc}") from None

    async def restore(self) -> None:
        for pid in self._stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._stopped.clear()
        for fault_id in self._faults:
            with contextlib.suppress(DrillError):  # it expired already
                await self.admin("DELETE", f"/admin/faults?id={fault_id}")
        self._faults.clear()
        for target, on in self._flags.items():
            await self.admin("POST", "/admin/flags", {"target": target, "on": on})
        self._flags.clear()
        for proxy in self.proxies.values():
            proxy.set(NetworkFault())
