"""``failwell demo --drift``: the retraining loop, live, end to end.

A scorer (v1, trained on the old regime) serves a route watched for drift and live quality.
Clients send traffic and, a moment later, the true label of each answer. Then the traffic
shifts (feature ``a`` moves by two standard deviations, and the labels move with it): the drift
monitor alarms, the loop starts ``failwell train`` on the new regime's data, the demo SIGKILLs
the job once after its first checkpoint (it is run again and resumes), the candidate passes its
gate, goes through a canary and is promoted, and quality recovers. Every wait is bounded.

Prints, and writes to ``WORKDIR/drift-demo.json``: the time from drift onset to detection, to
the trigger, to a promoted model; accuracy before the drift, under drift, after promotion; the
client requests that failed (the claim: none).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml

from failwell.config.registry import RegistryConfig
from failwell.demo.procs import ManagedProcess
from failwell.drift.stats import reference_of
from failwell.registry import open_registry
from failwell.training.runner import load_job, run_job

SHIFT = 2.0
WARM = 5.0  # seconds of traffic before the drift
AFTER = 6.0  # seconds of traffic after the promotion
LIMIT = 240.0  # the whole story must end within this


def regime(rng: np.random.Generator, n: int, shift: float) -> list[tuple[float, float, int]]:
    """Rows (a, b, label) of one regime: the label follows ``a`` relative to its mean."""
    a, b = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    y = (1.5 * (a - shift) - b + rng.normal(0, 0.4, n) > 0).astype(int)
    return [(float(x), float(z), int(t)) for x, z, t in zip(a, b, y, strict=True)]


def write_rows(path: Path, rows: list[tuple[float, float, int]]) -> None:
    lines = [json.dumps({"inputs": {"a": a, "b": b}, "label": y}) for a, b, y in rows]
    path.write_text("\n".join(lines))


def describe(path: Path) -> dict[str, Any]:
    rows = [json.loads(line)["inputs"] for line in path.read_text().splitlines() if line]
    return reference_of(rows).as_json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(workdir: Path, port: int) -> Path:
    """Data of both regimes, v1 in production, the job and the gateway config."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    rng = np.random.default_rng(42)
    write_rows(workdir / "old.jsonl", regime(rng, 3000, 0.0))
    write_rows(workdir / "new.jsonl", regime(rng, 3000, SHIFT))
    job = {
        "model": "scorer",
        "entry": "failwell.demo.trainer:train",
        "seed": 7,
        "args": {"epochs": 3, "batch": 100, "step_delay": 0.05},
        "checkpoint": {"every_steps": 10},
        "gate": {"metric": "holdout_auc", "tolerance": 0.02, "minimum": 0.8},
    }
    (workdir / "job-v1.yaml").write_text(yaml.safe_dump({**job, "data": "old.jsonl"}))
    (workdir / "job.yaml").write_text(yaml.safe_dump({**job, "data": "new.jsonl"}))
    registry_cfg = RegistryConfig(
        path=str(workdir / "registry"), checkouts=str(workdir / "checkouts")
    )
    v1, _ = run_job(load_job(workdir / "job-v1.yaml"), registry_cfg, describe=describe)
    open_registry(registry_cfg).set_alias("scorer", "production", v1.version)
    config = {
        "gateway": {"listen": f"127.0.0.1:{port}", "cache": {"path": "cache.sqlite"}},
        "registry": {"path": "registry", "checkouts": "checkouts", "watch": "500ms"},
        "log": {"enabled": True, "path": "log"},
        "backends": {
            "scorer": {
                "protocol": "python",
                "target": "failwell.demo.trainer:Scorer",
                "model_ref": "scorer@production",
                "workers": 2,
            }
        },
        "routes": {
            "score": {
                "input": {"a": "float", "b": "float"},
                "deadline": "2s",
                "drift": {"window": 300, "min_samples": 150, "every": "500ms"},
                "quality": {
                    "metric": "accuracy",
                    "output": "label",
                    "objective": 0.8,
                    "window": 300,
                    "min_labels": 100,
                },
                "retrain": {
                    "job": "job.yaml",
                    "triggers": ["drift", "quality"],
                    "every": "500ms",
                    "cooldown": "10m",
                    "max_per_day": 3,
                    "timeout": "3m",
                    "canary": {
                        "steps": [25, 100],
                        "step_time": "2s",
                        "min_requests": 10,
                        "max_distance": 1.0,
                    },
                },
                "tiers": [
                    {"name": "model", "backend": "scorer"},
                    {"name": "static", "value": {"score": 0.5, "label": 0}},
                ],
            }
        },
    }
    path = workdir / "failwell.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Story:
    url: str
    shift: float = 0.0
    started: float = field(default_factory=time.monotonic)
    answers: list[tuple[float, int, int]] = field(default_factory=list)  # (t, predicted, true)
    failed: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    stop: bool = False
    cause: dict[str, Any] = field(default_factory=dict)

    def mark(self, what: str) -> None:
        if what not in self.marks:
            self.marks[what] = time.monotonic() - self.started
            print(f"[{self.marks[what]:6.1f}s] {what}", flush=True)

    def accuracy(self, start: float, end: float) -> tuple[float | None, int]:
        hits = [p == t for at, p, t in self.answers if start <= at < end]
        return (round(sum(hits) / len(hits), 4) if hits else None), len(hits)


async def client(story: Story, session: aiohttp.ClientSession, seed: int) -> None:
    rng = np.random.default_rng(seed)
    number = 0
    while not story.stop:
        number += 1
        [(a, b, label)] = regime(rng, 1, story.shift)
        rid = f"c{seed}-{number}"
        try:
            async with session.post(
                f"{story.url}/v1/predict/score",
                json={"inputs": {"a": a, "b": b}},
                headers={"x-request-id": rid},
            ) as resp:
                body = await resp.json()
                if resp.status != 200:
                    story.failed.append(f"{resp.status} {body}")
                    continue
            story.answers.append(
                (time.monotonic() - story.started, body["outputs"]["label"], label)
            )
            async with session.post(
                f"{story.url}/v1/feedback/score", json={"request_id": rid, "label": label}
            ) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            story.failed.append(repr(exc))
        await asyncio.sleep(0.01)


async def watch(story: Story, session: aiohttp.ClientSession) -> str:
    """Drive the story; the loop's final decision."""
    killed = False
    await asyncio.sleep(WARM)
    story.shift = SHIFT
    story.mark("drift onset")
    ends = time.monotonic() + LIMIT
    while time.monotonic() < ends:
        await asyncio.sleep(0.1)
        async with session.get(f"{story.url}/admin/drift") as resp:
            drift = (await resp.json())["routes"]["score"]
        if "a" in drift["drifting"]:
            story.mark("drift detected")
        async with session.get(f"{story.url}/admin/retrain") as resp:
            loop = await resp.json()
        events = [e for e in loop["timeline"] if e["cycle"] == 1]
        kinds = [e["event"] for e in events]
        if "trigger" in kinds:
            story.mark("retraining triggered")
            story.cause = events[0]["cause"]
        pid = loop["routes"]["score"]["job_pid"]
        if "checkpoint" in kinds and not killed and pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed = True
            story.mark(f"training job SIGKILLed after step {events[-1].get('step')}")
        if kinds.count("job_started") > 1:
            story.mark("training job running again (resuming)")
        if "job_ended" in kinds:
            ended = next(e for e in events if e["event"] == "job_ended")
            story.mark(f"{ended['version']} trained, resumed from step {ended['resumed_from']}")
        if "gate" in kinds:
            gate = next(e for e in events if e["event"] == "gate")
            story.mark(f"gate {'passed' if gate['passed'] else 'REJECTED'}: {gate['reason']}")
        if "canary_started" in kinds:
            story.mark("canary rollout started")
        if "decision" in kinds:
            decision = next(e for e in events if e["event"] == "decision")
            story.mark(f"decision: {decision['decision']} ({decision['reason']})")
            story.marks["final"] = story.marks[
                f"decision: {decision['decision']} ({decision['reason']})"
            ]
            return str(decision["decision"])
    return "timed out"


async def tell(url: str) -> dict[str, Any]:
    story = Story(url)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [asyncio.create_task(client(story, session, seed)) for seed in range(4)]
        try:
            decision = await watch(story, session)
            await asyncio.sleep(AFTER)
        finally:
            story.stop = True
            await asyncio.gather(*clients, return_exceptions=True)
        async with session.get(f"{url}/admin/retrain") as resp:
            timeline = (await resp.json())["timeline"]
    onset = story.marks["drift onset"]
    final = story.marks.get("final", time.monotonic() - story.started)
    before = story.accuracy(0.0, onset)
    during = story.accuracy(onset, final)
    after = story.accuracy(final + 1.0, float("inf"))
    return {
        "decision": decision,
        "trigger": story.cause,
        "seconds_from_onset": {
            "detected": _since(story, "drift detected", onset),
            "triggered": _since(story, "retraining triggered", onset),
            "decided": round(final - onset, 2),
        },
        "accuracy": {
            "before_drift": before[0],
            "under_drift": during[0],
            "after_promotion": after[0],
            "answers": {"before": before[1], "under": during[1], "after": after[1]},
        },
        "requests": len(story.answers) + len(story.failed),
        "failed_requests": len(story.failed),
        "failures": story.failed[:5],
        "marks": story.marks,
        "timeline": timeline,
    }


def _since(story: Story, what: str, onset: float) -> float | None:
    return round(story.marks[what] - onset, 2) if what in story.marks else None


def run_drift_demo(workdir: Path, port: int | None = None) -> int:
    workdir = workdir.resolve()
    port = port or free_port()
    print("training v1 on the old regime ...", flush=True)
    config = setup(workdir, port)
    gateway = ManagedProcess("gateway", log_file=workdir / "gateway.log")
    cmd = [sys.executable, "-m", "failwell", "serve", "--config", str(config)]
    try:
        gateway.start(cmd, ready_url=f"http://127.0.0.1:{port}/health/live", timeout=120)
        print(f"gateway on http://127.0.0.1:{port} (dashboard: /dashboard)", flush=True)
        result = asyncio.run(tell(f"http://127.0.0.1:{port}"))
    finally:
        gateway.stop()
    (workdir / "drift-demo.json").write_text(json.dumps(result, indent=2))
    since, acc = result["seconds_from_onset"], result["accuracy"]
    print()
    print(f"decision            {result['decision']}")
    print(f"onset → detection   {since['detected']} s")
    cause = result["trigger"].get("signal")
    print(f"onset → trigger     {since['triggered']} s (by {cause}: {result['trigger']})")
    print(f"onset → decision    {since['decided']} s (promoted model serving)")
    print(
        f"accuracy            before {acc['before_drift']}, under drift {acc['under_drift']}, "
        f"after promotion {acc['after_promotion']}  (answers {acc['answers']})"
    )
    print(f"requests            {result['requests']}, failed {result['failed_requests']}")
    print(f"written             {workdir / 'drift-demo.json'}")
    return 0 if result["decision"] == "promoted" and not result["failed_requests"] else 1
