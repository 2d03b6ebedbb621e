"""A training job run by the loop: ``failwell train JOB --events`` as a child process, read
line by line. A job that dies (a crash, a SIGKILL, an out-of-memory kill) is run again, up to
``restarts`` times: it resumes from its last checkpoint in the registry's stores. A job that
runs past ``timeout`` is killed and counts as failed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Event = Callable[[str, dict[str, Any]], None]
STDERR_TAIL = 2000


@dataclass
class JobOutcome:
    """How a job ended: ``version`` registered (gate verdict in ``gate``), or ``error``."""

    version: str | None = None
    gate: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None
    runs: int = 0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.version is not None and (self.gate is None or bool(self.gate.get("passed")))


class TrainingProcess:
    """One job: ``run`` until it ends (restarting it when it dies); ``pid`` of the live run."""

    def __init__(
        self, job: Path, config: Path | None, timeout: float, restarts: int, event: Event
    ) -> None:
        self.job, self.config, self.timeout, self.restarts = job, config, timeout, restarts
        self._event = event
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "failwell.cli.train", str(self.job), "--events"]
        return argv + (["--config", str(self.config)] if self.config is not None else [])

    async def run(self) -> JobOutcome:
        outcome = JobOutcome()
        ends = time.monotonic() + self.timeout
        while True:
            outcome.runs += 1
            self._event("job_started", {"run": outcome.runs, "job": str(self.job)})
            try:
                code, stderr = await asyncio.wait_for(
                    self._once(outcome), max(ends - time.monotonic(), 0.001)
                )
            except TimeoutError:
                await self.kill()
                outcome.error = f"the job ran past its timeout ({self.timeout:g}s)"
                return outcome
            if code == 0 or (code == 3 and outcome.version is not None):
                return outcome  # 3: registered, rejected by its gate
            if code < 0 and outcome.runs <= self.restarts:
                self._event("job_died", {"run": outcome.runs, "killed_by": -code, "resumes": True})
                continue
            outcome.error = f"the job exited with {code}: {stderr[-STDERR_TAIL:].strip()}"
            return outcome

    async def _once(self, outcome: JobOutcome) -> tuple[int, str]:
        self.proc = proc = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        errors = asyncio.ensure_future(proc.stderr.read())
        try:
            async for raw in proc.stdout:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(line, dict):
                    continue
                if line.get("event") == "checkpoint":
                    self._event("checkpoint", {"step": line.get("step")})
                elif line.get("event") == "done":
                    outcome.version = line.get("version")
                    outcome.gate = line.get("gate")
                    outcome.metrics = line.get("metrics") or {}
                    outcome.resumed_from = line.get("resumed_from")
            code = await proc.wait()
            return code, (await errors).decode(errors="replace")
        finally:
            if proc.returncode is None:
                await self.kill()
            errors.cancel()

    async def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)
