"""The demo target: the drill starts the demo ranker servers and a gateway on free ports, owns
them (process faults: SIGKILL, SIGSTOP/SIGCONT, restart), and stops them at the end. Also the
classic demo drill: kill the primary, then every model (rules answer), then everything but the
cache while the chat route's streams are cut mid-way (each must end with an in-band error),
then restore."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from failwell.demo.procs import ManagedProcess
from failwell.demo.stack import DemoPorts, demo_config, ensure_models, port_busy, server_commands
from failwell.drills.spec import Action, Drill, ProcessSignal, parse_drill
from failwell.drills.target import SIGNALS, DrillError, GatewayTarget

START_TIMEOUT = 60.0
RANKERS = ("ranker-east-1", "ranker-east-2", "ranker-west-1")
# Started when a step sends streams; only the primary: a stream it cannot open falls to the
# route's rules tier (one model server less on the drill's machine).
CHATS = ("chat-large",)

DEMO_DRILL: dict[str, Any] = {
    "name": "classic",
    "target": "demo",
    "route": "recommend",
    "load": {"rate": 40, "users": 40, "timeout": "2s"},
    "steady_state": {"availability": 0.999, "max_5xx": 0, "tier1_share": 0.99, "p99": "500ms"},
    "warmup": "4s",
    "steps": [
        {
            "name": "primary down",
            "duration": "4s",
            "actions": [{"process": "kill", "replicas": list(RANKERS)}],
            "expect": {"min_share": {"fallback": 0.9}},
        },
        {
            "name": "all models down",
            "duration": "3s",
            "actions": [{"gateway": {"kind": "error", "backend": "light"}}],
            "expect": {"min_share": {"rules": 0.9}},
        },
        {
            # Also, the chat route's primary cuts every stream after 3 chunks: each stream
            # must end with an in-band error event (the route's ``error`` policy) or, once the
            # cuts opened the primary's breaker, complete from a lower tier; none truncated
            # with a clean close, none hanging. In the same step: it adds no time.
            "name": "all but the cache down",
            "duration": "3s",
            "actions": [
                {"flag": "tier:recommend/rules", "enabled": False},
                {"gateway": {"kind": "stream_cut", "backend": "chat-large", "after": 3}},
            ],
            "stream": {"route": "chat", "rate": 10, "timeout": "5s"},
            "expect": {"min_share": {"cache": 0.9}},
        },
        {
            "name": "restore",
            # Killed replicas restart (a few seconds) and their breakers let a probe through
            # every 5 s (the demo's breaker recovery): tier 1 is back within two recoveries.
            # The step ends once tier 1 has been back for 4 s.
            "duration": "15s",
            "settle": "4s",
            "actions": [{"restore": True}],
            "expect": {"recover_within": "14s"},
        },
    ],
}


def demo_drill(**overrides: Any) -> Drill:
    return parse_drill({**DEMO_DRILL, **overrides})


def _free_base() -> int:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000)
        ports = DemoPorts.from_base(base + 300, base)
        if not any(port_busy(p) for p in ports.all()):
            return base
    raise DrillError("no free ports for the demo stack")


class DemoTarget(GatewayTarget):
    def __init__(self, drill: Drill) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if drill.demo.workdir:
            self.workdir = Path(drill.demo.workdir).resolve()
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="failwell-drill-")
            self.workdir = Path(self._tmp.name)
        base = _free_base()
        self.ports = DemoPorts.from_base(base + 300, base)
        super().__init__(f"http://127.0.0.1:{self.ports.gateway}", drill)
        self.procs: dict[str, tuple[list[str], ManagedProcess]] = {}
        self.gateway: ManagedProcess | None = None
        self._touched: dict[str, ProcessSignal] = {}

    def _start_blocking(self) -> None:
        ensure_models(self.workdir / "models")
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        config = demo_config(self.workdir, self.ports.gateway, self.ports.ranker_east[0])
        config["control"] = {"flags_path": str(self.workdir / "flags.json")}
        if self.drill.demo.rules:
            for tier in config["routes"]["recommend"]["tiers"]:
                if "rules" in tier:
                    tier["rules"] = self.drill.demo.rules
        path = self.workdir / "failwell.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        wanted = RANKERS + (CHATS if any(s.stream for s in self.drill.steps) else ())
        for name, cmd in server_commands(self.workdir, self.ports):
            if name in wanted:
                self.procs[name] = (cmd, self._spawn(name, cmd))
        for _, proc in self.procs.values():
            proc.wait_ready(timeout=START_TIMEOUT)
        self.gateway = ManagedProcess("gateway", log_file=self.workdir / "logs" / "gateway.log")
        self.gateway.start(
            [sys.executable, "-m", "failwell", "serve", "--config", str(path)],
            ready_url=f"{self.url}/health/live",
            timeout=START_TIMEOUT,
        )

    def _spawn(self, name: str, cmd: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, log_file=self.workdir / "logs" / f"{name}.log")
        proc.spawn(cmd, ready_line="READY")
        return proc

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._start_blocking)
        except BaseException:
            await asyncio.to_thread(self._stop_all)
            raise
        await super().open()

    async def close(self) -> None:
        await super().close()
        await asyncio.to_thread(self._stop_all)
        if self._tmp is not None:
            self._tmp.cleanup()

    def _stop_all(self) -> None:
        if self.gateway is not None:
            self.gateway.stop(grace=1.0)
        for _, proc in self.procs.values():
            proc.stop(grace=2.0)

    async def apply(self, action: Action) -> None:
        if action.process is None:
            await super().apply(action)
            return
        unknown = [r for r in action.replicas if r not in self.procs]
        if unknown:
            raise DrillError(f"unknown demo process(es) {unknown}; one of {list(self.procs)}")
        await asyncio.to_thread(self._signal, action.process, action.replicas)

    def _signal(self, what: ProcessSignal, names: tuple[str, ...]) -> None:
        if what is ProcessSignal.START:
            self._restart([n for n in names if not self.procs[n][1].alive()])
            return
        sig = SIGNALS[what]
        for name in names:
            self.procs[name][1].kill(sig)
            self._touched[name] = what
        if what is ProcessSignal.KILL:
            for name in names:
                self.procs[name][1].wait(5.0)

    def _restart(self, names: list[str]) -> None:
        for name in names:
            self.procs[name][1].stop(grace=1.0)
            self.procs[name] = (self.procs[name][0], self._spawn(name, self.procs[name][0]))
        for name in names:
            self.procs[name][1].wait_ready(timeout=START_TIMEOUT)

    async def restore(self) -> None:
        def revive() -> None:
            for name in self._touched:
                proc = self.procs[name][1]
                if proc.alive():
                    proc.kill(signal.SIGCONT)
            self._restart([n for n in self._touched if not self.procs[n][1].alive()])
            self._touched.clear()

        await super().restore()  # the gateway's faults and flags first: that is quick
        await asyncio.to_thread(revive)
