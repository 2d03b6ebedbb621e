"""A retraining canary outlives its leader: two gateway processes share one redis-server (and
a registry); the lease holder's retraining loop trains a candidate (``failwell train`` as a
child) and starts its canary; SIGKILLed mid-canary, it leaves the rollout to the other
gateway, which takes the lease, adopts and ends the rollout, and whose retraining loop
learns the outcome from the fleet's record: shown as adopted, then decided, recorded once
(timeline, metrics, audit)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis as redis_client

from failwell.cli.drift import reference_json
from failwell.config.registry import RegistryConfig
from failwell.log.records import parse_line
from failwell.registry import open_registry
from failwell.training.runner import load_job, run_job
from tests.integration.conftest import (
    Gateway,
    RedisServer,
    Stack,
    background_load,
    http_json,
    metric_value,
    wait_until,
)
from tests.integration.test_fleet_rollout import leader
from tests.integration.test_retrain import SHIFT, job_file, write_data

TARGET = "r/model"


def config(
    stack: Stack, tmp: Path, name: str, schedule: str, redis: RedisServer, log: RedisServer
) -> dict[str, Any]:
    backends = {
        "scorer": {
            "protocol": "python",
            "target": "failwell.demo.trainer:Scorer",
            "model_ref": "scorer@production",
            "workers": 1,
        }
    }
    routes = {
        "r": {
            "input": {"a": "float", "b": "float"},
            "deadline": "2s",
            "retrain": {
                "job": "job.yaml",
                "triggers": ["schedule"],
                "schedule": schedule,
                "every": "200ms",
                "cooldown": "0s",
                "max_per_day": 1,
                "timeout": "60s",
                "canary": {
                    "steps": [50, 100],
                    "step_time": "3s",
                    "min_requests": 10,
                    "max_distance": 1.0,
                },
            },
            "tiers": [
                {"name": "model", "backend": "scorer"},
                {"name": "static", "value": {"score": 0.5, "label": 0}},
            ],
        }
    }
    cfg = stack.config(backends, routes)
    cfg["gateway"]["cache"] = {"path": str(tmp / f"{name}-cache.sqlite")}
    cfg["control"] = {"flags_path": str(tmp / f"{name}-flags.json")}
    cfg["registry"] = {
        "path": str(tmp / "registry"),
        "checkouts": str(tmp / f"{name}-checkouts"),
        "watch": "200ms",
    }
    cfg["fleet"] = {"redis": redis.url, "instance": name, "lease": "1s", "max_reconnect": "300ms"}
    cfg["log"] = {"enabled": True, "backend": "redis", "redis_url": log.url}
    return cfg


def audited(log: RedisServer, action: str) -> list[dict[str, Any]]:
    entries: Any = redis_client.Redis(port=log.port).xrange("failwell:log:audit")
    found = []
    for _, fields in entries:
        body = json.loads(parse_line(fields[b"line"])[0].body)
        if body["action"] == action:
            found.append(body["detail"])
    return found


def test_the_next_leader_learns_the_outcome_of_a_retraining_canary(
    stack: Stack, tmp_path: Path
) -> None:
    registry_cfg = RegistryConfig(path=str(tmp_path / "registry"))
    write_data(tmp_path / "old.jsonl", 0, 0.0)
    v1, _ = run_job(
        load_job(job_file(tmp_path, "old.jsonl")), registry_cfg, describe=reference_json
    )
    open_registry(registry_cfg).set_alias("scorer", "production", v1.version)
    write_data(tmp_path / "new.jsonl", 1, SHIFT)
    job_file(tmp_path, "new.jsonl")  # what the loop trains: a well-behaved candidate

    redis, log = stack.redis(), stack.redis()
    args = ("--workers", "1")
    # a leads and its schedule is due soon; b's never is: what b records, it learned
    a = stack.gateway(config(stack, tmp_path, "a", "2s", redis, log), "a", args)
    gws: dict[str, Gateway] = {"a": a}
    assert wait_until(lambda: leader(gws) == "a", timeout=10)
    b = stack.gateway(config(stack, tmp_path, "b", "1h", redis, log), "b", args)
    gws["b"] = b
    r = redis_client.Redis(port=redis.port)

    def record() -> dict[str, Any]:
        return dict(json.loads(r.hget("{failwell:default}:rollouts", TARGET) or b"{}"))

    def retrain(gw: Gateway) -> dict[str, Any]:
        doc: dict[str, Any] = http_json(f"{gw.url}/admin/retrain")
        return doc

    rng = np.random.default_rng(5)
    rows = [
        {"inputs": {"a": float(x) + SHIFT, "b": float(z)}} for x, z in rng.normal(0, 1, (500, 2))
    ]
    with (
        background_load(a.predict_url("r"), lambda i: rows[i % len(rows)], 2),
        background_load(b.predict_url("r"), lambda i: rows[i % len(rows)], 2),
    ):
        assert wait_until(lambda: record().get("step", 0) >= 1, timeout=90), retrain(a)
        started = record()
        assert started["state"] == "running" and started["origin"]["loop"] == "retrain"
        assert started["origin"]["signal"] == "schedule" and started["leader"] == "a"
        killed = time.time()
        a.proc.kill(signal.SIGKILL)
        a.proc.wait(5)

        def decided() -> dict[str, Any]:
            return dict(retrain(b)["routes"]["r"]["last"])

        assert wait_until(lambda: bool(decided()), timeout=30), (record(), retrain(b))
    ended = record()
    assert ended["id"] == started["id"] and ended["leader"] == "b"
    assert ended["state"] in ("promoted", "rolled_back"), ended
    last = decided()
    assert last["decision"] == ended["state"] and last["adopted_rollout"] == ended["id"]
    assert last["version"] == ended["candidate"] and last["signal"] == "schedule"
    doc = retrain(b)
    assert (
        doc["routes"]["r"]["state"] == "watching" and doc["routes"]["r"]["adopted_rollout"] is None
    )
    events = [e["event"] for e in doc["timeline"]]
    assert events == ["canary_adopted", "decision"], doc["timeline"]
    rollouts = metric_value(
        b.metrics(), "failwell_retrain_rollouts_total", route="r", decision=ended["state"]
    )
    assert rollouts == 1
    decisions = audited(log, "retrain.decision")
    assert len(decisions) == 1 and decisions[0]["adopted_rollout"] == ended["id"], decisions
    adopted = next(e for e in doc["timeline"] if e["event"] == "canary_adopted")
    figures = {
        "outcome": ended["state"],
        "adopted_after_kill_s": round(adopted["at"] - killed, 2),
        "learned_after_end_s": round(doc["timeline"][-1]["at"] - ended["finished"], 2),
    }
    print(f"\nretraining canary after its leader's SIGKILL: {figures}")
