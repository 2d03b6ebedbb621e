"""``failwell serve --workers 2`` with a real model server and a real redis-server: both
workers answer on one port, the control loops run in one of them (one probe stream, one
canary stream), ``/metrics`` answers for both, and a SIGKILLed worker is restarted by the
parent while requests keep being answered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
from pathlib import Path
from typing import Any

import redis as redis_client

from failwell.cli.workers import STARTUP_FAILURE, WorkerParent, listen
from failwell.testing.load import LoadResult, run_load
from tests.integration.conftest import Gateway, Stack, http_json, metric_value, wait_until

INPUT = {"user_id": "u0042", "country": "DE", "category": "books"}


def config(stack: Stack, url: str, replica: dict[str, Any]) -> dict[str, Any]:
    cfg = stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": "500ms",
                "replicas": [replica],
                "health": {"interval": "100ms", "timeout": "90ms"},
            },
            "ranker2": {"protocol": "v2", "model": "ranker", "replicas": [replica]},
        },
        routes={
            "recommend": {
                "input": {"user_id": "str", "country": "str", "category": "str"},
                "deadline": "1s",
                "canary": {"interval": "200ms", "checks": [{"inputs": INPUT}]},
                "slo": {
                    "availability": 0.99,
                    "windows": [{"short": "1m", "long": "5m", "burn_rate": 10}],
                },
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "static", "value": {"items": [1, 2, 3]}},
                ],
            }
        },
    )
    cfg["fleet"] = {"redis": url, "lease": "1s", "max_reconnect": "500ms"}
    cfg["control"] = {"flags_path": str(stack.tmp / "flags.json")}
    return cfg


def instances(gw: Gateway, tries: int = 60) -> dict[str, bool]:
    """Fleet instance name → leader, as each worker's readiness says (new connections land
    on either worker)."""
    seen: dict[str, bool] = {}
    for _ in range(tries):
        fleet = http_json(f"{gw.url}/health/ready")["checks"]["fleet"]
        seen[fleet["instance"]] = fleet["leader"]
        if len(seen) >= 2 and tries > 0:
            break
    return seen


def pid(instance: str) -> int:
    return int(instance.rsplit("-", 1)[1])


def per_worker(text: str, name: str, **labels: str) -> dict[str, float]:
    values = {}
    for worker in ("0", "1"):
        values[worker] = metric_value(text, name, worker=worker, **labels) or 0.0
    return values


def test_two_workers_one_port_one_control_loop(stack: Stack, models: Path) -> None:
    redis = stack.redis()
    server = stack.model_server(model_dir=models, label="m1")
    gw = stack.gateway(config(stack, redis.url, server.replica()), args=("--workers", "2"))

    # both workers answer (two processes), one of them leads
    assert wait_until(lambda: len(instances(gw)) == 2, timeout=20)
    assert wait_until(lambda: sum(instances(gw).values()) == 1, timeout=10)
    seen = instances(gw)
    assert len({pid(i) for i in seen}) == 2 and gw.proc.pid not in {pid(i) for i in seen}

    # one probe stream and one canary stream: the follower's counts stay at zero
    time.sleep(1.0)
    text = gw.metrics()
    probes = per_worker(text, "failwell_probes_total", backend="ranker", result="pass")
    canaries = per_worker(text, "failwell_canary_checks_total", route="recommend", result="pass")
    leaders = per_worker(text, "failwell_fleet_leader")
    assert sorted(leaders.values()) == [0.0, 1.0], leaders
    lead = next(w for w, v in leaders.items() if v == 1.0)
    follow = "1" if lead == "0" else "0"
    assert probes[lead] >= 5 and probes[follow] == 0, probes
    assert canaries[lead] >= 2 and canaries[follow] == 0, canaries

    # a rollout begins only on the worker that leads (409 elsewhere), recorded fenced in Redis
    spec = {"route": "recommend", "tier": "primary", "candidate": "ranker2", "step_time": "60s"}
    refused = []

    def begin() -> bool:
        try:
            http_json(f"{gw.url}/admin/rollouts", spec)
            return True
        except urllib.error.HTTPError as exc:
            refused.append(exc.code)
            return False

    assert wait_until(begin, timeout=10, interval=0.01)
    assert set(refused) <= {409}
    r = redis_client.Redis(port=redis.port)

    def record() -> dict[str, Any]:
        raw = r.hget("{failwell:default}:rollouts", "recommend/primary")
        return {} if raw is None else dict(json.loads(raw))

    assert wait_until(lambda: record().get("state") == "running", timeout=5)
    for _ in range(4):  # any worker shows what the leader recorded
        shown = http_json(f"{gw.url}/admin/rollouts")["fleet"]
        assert shown["recommend/primary"]["candidate"] == "ranker2"

    # SIGSTOP the leader: the other worker takes the lease within its time and carries the
    # rollout on (an "adopted" decision, fenced by its token); SIGCONT: the old leader stops
    # controlling and writes nothing (its token is stale)
    leader = next(i for i, lead_ in seen.items() if lead_)
    os.kill(pid(leader), signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        assert wait_until(lambda: any(instances(gw, 10).values()), timeout=5)
        took_over = time.monotonic() - stopped
    finally:
        os.kill(pid(leader), signal.SIGCONT)
    assert took_over < 3.0, took_over
    assert wait_until(lambda: record().get("leader") not in (None, leader), timeout=5)
    adopted = record()
    assert adopted["state"] == "running", adopted
    assert [d["action"] for d in adopted["decisions"]][-1] == "adopted", adopted["decisions"]
    assert wait_until(lambda: sum(instances(gw).values()) == 1, timeout=5)
    seen = instances(gw)
    time.sleep(0.5)  # the deposed leader, running again, wrote nothing
    assert record()["decisions"] == adopted["decisions"]

    # SIGKILL the leader under load: the other takes the lease, the parent starts the slot again
    leader = next(i for i, lead_ in seen.items() if lead_)
    killed_at: list[float] = []

    def kill() -> None:
        killed_at.append(time.monotonic())
        os.kill(pid(leader), signal.SIGKILL)

    async def run() -> LoadResult:
        result = LoadResult()
        task = asyncio.create_task(
            run_load(
                gw.predict_url("recommend"),
                lambda i: {"inputs": INPUT},
                concurrency=4,
                duration=4.0,
                sink=result,
            )
        )
        await asyncio.sleep(1.0)
        await asyncio.to_thread(kill)
        await task
        return result

    result = asyncio.run(run())
    after = result.since(killed_at[0] + 0.5)
    assert len(after) > 50 and not after.failed, after.failed[:5]
    # the requests in flight on the killed worker's connections are the only ones lost
    assert len(result.failed) <= 4, result.failed
    assert wait_until(lambda: leader not in instances(gw) and len(instances(gw)) == 2, timeout=20)
    assert wait_until(lambda: sum(instances(gw).values()) == 1, timeout=10)
    assert gw.proc.alive()  # the parent runs on

    # the fleet's SLO counts add up every worker's (each flushes off the request path)
    def fleet_slo() -> tuple[int, int]:
        doc = http_json(f"{gw.url}/admin/slo?route=recommend")["routes"]["recommend"]
        figures = doc["availability"]["windows"]["60.0"]
        return figures["fleet"]["events"], figures["local"]["events"]

    answered = len(result.records) - len(result.failed)
    assert wait_until(lambda: fleet_slo()[0] >= max(0.7 * answered, fleet_slo()[1] + 1), 5), (
        fleet_slo(),
        answered,
    )

    # SIGTERM to the parent: every worker drains and exits, then the parent
    workers = [pid(i) for i in instances(gw)]
    os.kill(gw.proc.pid, signal.SIGTERM)  # the parent alone: it forwards to the workers
    assert gw.proc.wait(20) == 0
    assert not [p for p in workers if os.path.exists(f"/proc/{p}")]


def test_a_gateway_that_cannot_start_stops_the_parent() -> None:
    """A worker whose gateway never started (exit STARTUP_FAILURE on its first launch) is not
    started again in a loop: the parent stops the others and exits with that code."""
    sock = listen("127.0.0.1", 0)
    try:
        started = time.monotonic()
        assert WorkerParent(2, sock, lambda index, shared: STARTUP_FAILURE).run() == 3
        assert time.monotonic() - started < 10
    finally:
        sock.close()
