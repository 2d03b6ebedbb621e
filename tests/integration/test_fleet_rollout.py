"""A rollout in a fleet of two gateway processes sharing one redis-server, under load on both:
started on the leader, its split is applied by both (each answers some requests from the
candidate, seen through the answers' ``model_version``), it is judged once on the counts of
both (one audit record per decision) and its promotion reaches both; the other gateway takes a
start and an abort and passes them to the leader; through a restart of
Redis (empty) it is put back and carried on; when the leader is SIGKILLed mid-rollout the other
gateway takes the lease, adopts it and ends it."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis as redis_client

from failwell.log.records import parse_line
from tests.integration.conftest import Gateway, RedisServer, Stack, http_json, wait_until
from tests.integration.test_rollout import push_versions, scorer_config, x_body

TARGET = "score/primary"
Seen = dict[str, list[tuple[float, int, str | None]]]  # gateway → (sent, status, model_version)


@contextmanager
def answers(gateways: dict[str, Gateway], concurrency: int = 3) -> Iterator[Seen]:
    """Clients posting to each gateway until the block ends (at most 120 s); the model version
    of every answer, per gateway."""
    seen: Seen = {name: [] for name in gateways}
    stop = threading.Event()

    async def client(session: aiohttp.ClientSession, name: str, url: str) -> None:
        i = 0
        while not stop.is_set():
            i, sent = i + 1, time.monotonic()
            try:
                async with session.post(url, json=x_body(i)) as resp:
                    body = await resp.json()
                    seen[name].append((sent, resp.status, body.get("model_version")))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                seen[name].append((sent, 0, None))
                await asyncio.sleep(0.05)

    async def clients() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        client(session, name, gw.predict_url("score"))
                        for name, gw in gateways.items()
                        for _ in range(concurrency)
                    )
                ),
                120,
            )

    thread = threading.Thread(target=lambda: asyncio.run(clients()), daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=15)


def versions(seen: Seen, name: str, since: float, until: float = float("inf")) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sent, status, version in seen[name]:
        if since <= sent < until and status == 200 and version:
            counts[version] = counts.get(version, 0) + 1
    return counts


def fleet_config(stack: Stack, tmp: Path, name: str, redis: RedisServer, log: RedisServer) -> Any:
    cfg = scorer_config(stack, tmp)
    cfg["gateway"]["cache"] = {"path": str(tmp / f"{name}-cache.sqlite")}
    cfg["control"] = {"flags_path": str(tmp / f"{name}-flags.json")}
    cfg["fleet"] = {"redis": redis.url, "instance": name, "lease": "1s", "max_reconnect": "300ms"}
    cfg["log"] = {"enabled": True, "backend": "redis", "redis_url": log.url}
    return cfg


def leader(gateways: dict[str, Gateway]) -> str | None:
    for name, gw in gateways.items():
        try:
            if http_json(f"{gw.url}/health/ready")["checks"]["fleet"]["leader"]:
                return name
        except OSError:
            continue
    return None


def audited(log: RedisServer, rollout: str) -> list[str]:
    """The rollout's audit records, in order: one per decision, whoever made it."""
    entries: Any = redis_client.Redis(port=log.port).xrange("failwell:log:audit")
    actions = []
    for _, fields in entries:
        body = json.loads(parse_line(fields[b"line"])[0].body)
        if body["detail"].get("rollout") == rollout:
            actions.append(str(body["action"]).removeprefix("rollout."))
    return actions


def predict_version(gw: Gateway) -> str:
    req = urllib.request.Request(
        gw.predict_url("score"),
        data=json.dumps(x_body(1)).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(json.loads(resp.read())["model_version"])


def serves(gateways: Iterable[Gateway], version: str) -> bool:
    return all(predict_version(gw) == version for gw in gateways)


def test_a_rollout_splits_every_gateway_is_judged_once_and_outlives_its_leader(
    stack: Stack, tmp_path: Path
) -> None:
    push_versions(tmp_path)
    redis, log = stack.redis(), stack.redis()
    gws = {
        name: stack.gateway(
            fleet_config(stack, tmp_path, name, redis, log), name, args=("--workers", "1")
        )
        for name in ("a", "b")
    }
    r = redis_client.Redis(port=redis.port)

    def record() -> dict[str, Any]:
        return dict(json.loads(r.hget("{failwell:default}:rollouts", TARGET) or b"{}"))

    def start(gw: Gateway, candidate: str, steps: list[int], step_time: str) -> str:
        body = {"route": "score", "tier": "primary", "candidate": candidate, "steps": steps}
        started = http_json(f"{gw.url}/admin/rollouts", {**body, "step_time": step_time})
        return str(started["id"])

    def at(wall: float) -> float:  # a wall-clock time of a record on the monotonic clock
        return wall - time.time() + time.monotonic()

    def ended() -> bool:
        return record().get("state") not in (None, "running")

    assert wait_until(lambda: leader(gws) is not None, timeout=10)
    with answers(gws) as seen:
        assert wait_until(lambda: all(len(v) > 30 for v in seen.values()), timeout=10)

        # 1. started on the leader, split on both, judged once on the counts of both, promoted
        # on both
        lead = leader(gws)
        assert lead is not None
        began = time.monotonic()
        first = start(gws[lead], "scorer@v2", [20, 50, 100], "1s")
        assert wait_until(ended, timeout=30), record()
        done = record()
        assert done["state"] == "promoted", done
        promoted = at(done["finished"])
        for name in gws:
            assert versions(seen, name, began, promoted).get("scorer@v2", 0) > 10, name
        once = ["start", *["step", "step_passed"] * 3, "promoted"]
        assert wait_until(lambda: audited(log, first) == once, timeout=5), audited(log, first)
        judged = sum(d["requests"] for d in done["decisions"] if d["action"] == "step_passed")
        per_gateway = [versions(seen, n, began, promoted).get("scorer@v2", 0) for n in gws]
        assert judged > max(per_gateway), (judged, per_gateway)  # not one process's share
        assert wait_until(lambda: serves(gws.values(), "scorer@v2"), timeout=5)

        # 1b. the other gateway takes a start and an abort: it passes them to the leader,
        # which begins and ends the rollout, and answers as the leader did
        other = next(n for n in gws if n != lead)
        passed = start(gws[other], "scorer@v1", [50, 100], "1h")
        assert wait_until(lambda: record().get("id") == passed, 5), record()
        aborted = http_json(f"{gws[other].url}/admin/rollouts/abort", {"route": "score"})
        assert aborted["id"] == passed and aborted["state"] == "aborted", aborted
        assert wait_until(lambda: record().get("state") == "aborted", 5), record()
        assert record()["leader"] == lead
        assert wait_until(lambda: serves(gws.values(), "scorer@v2"), timeout=5)

        # 2. Redis restarts empty mid-rollout: both keep the split they had meanwhile; the
        # rollout's record is put back and the holder of the new lease carries it to its end
        second = start(gws[other], "scorer@v1", [50, 100], "1s")
        assert wait_until(lambda: record().get("id") == second and record()["step"] == 1, 5)
        time.sleep(0.3)
        redis.proc.kill(signal.SIGKILL)
        redis.proc.wait(5)
        down = time.monotonic()
        time.sleep(1.5)
        for name in gws:
            assert versions(seen, name, down + 0.2).get("scorer@v1", 0) > 5, name
        stack.redis(port=redis.port)
        assert wait_until(lambda: record().get("id") == second and ended(), timeout=20)
        again = record()
        assert again["state"] == "promoted", again
        assert "adopted" in [d["action"] for d in again["decisions"]], again["decisions"]
        assert wait_until(lambda: serves(gws.values(), "scorer@v1"), timeout=5)

        # 3. SIGKILL the leader mid-rollout: the other takes the lease, adopts the rollout and
        # judges it on what both counted (this candidate's outputs are off: rolled back)
        assert wait_until(lambda: leader(gws) is not None, timeout=10)
        lead = leader(gws)
        assert lead is not None
        survivor = next(n for n in gws if n != lead)
        third = start(gws[lead], "scorer@v5", [50, 100], "2s")
        mid = time.monotonic()
        assert wait_until(lambda: versions(seen, survivor, mid).get("scorer@v5", 0) > 5, timeout=5)
        killed, killed_wall = time.monotonic(), time.time()
        gws[lead].proc.kill(signal.SIGKILL)
        gws[lead].proc.wait(5)
        assert wait_until(lambda: record().get("id") == third and ended(), timeout=15), record()
        last = record()
        assert last["state"] == "rolled_back" and "distance" in last["reason"], last
        assert last["leader"] == survivor
        assert "adopted" in [d["action"] for d in last["decisions"]]
        assert wait_until(lambda: serves([gws[survivor]], "scorer@v1"), timeout=5)
        tail = audited(log, third)
        assert tail.count("adopted") == 1 and tail[-1] == "rolled_back", tail
        adopted = next(d["at"] for d in last["decisions"] if d["action"] == "adopted")
        figures = {
            "promoted_s": done["decisions"][-1]["seconds"],
            "judged_candidate": [
                d["requests"] for d in done["decisions"] if d["action"] == "step_passed"
            ],
            "per_gateway": per_gateway,
            "redis_restart_promoted_s": again["decisions"][-1]["seconds"],
            "adopted_after_kill_s": round(adopted - killed_wall, 2),
            "ended_after_kill_s": round(last["finished"] - killed_wall, 2),
        }
        print(f"\nfleet rollout figures: {figures}")
    failed = [s for s in seen[survivor] if s[1] != 200]
    failed += [s for s in seen[lead] if s[1] != 200 and s[0] < killed - 0.5]
    assert not failed, failed[:5]
