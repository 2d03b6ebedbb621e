"""The inference log on real processes: SIGKILL under load in sync mode, a consumer killed
between records, replay against a second gateway, Redis Streams on a real redis-server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from failwell.config.log import LogConfig
from failwell.log.query import Filter, scan, select
from failwell.log.records import verify
from failwell.log.redis_stream import RedisStreamLog
from failwell.log.segments import SegmentLog
from tests.integration.conftest import PY, Stack, http_json, wait_until


def echo_config(stack: Stack, log: dict[str, Any] | None, name: str = "g") -> dict[str, Any]:
    cfg = stack.config(
        backends={"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
        routes={
            "echo": {
                "input": {"user_id": str.__name__, "n": "int"},
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "static", "value": {"echo": None}},
                ],
            }
        },
        cache={"path": str(stack.tmp / f"{name}-cache.sqlite")},
    )
    if log is not None:
        cfg["log"] = {"enabled": True, "path": str(stack.tmp / f"{name}-log"), **log}
    return cfg


async def hammer(url: str, stop: threading.Event, answered: list[str], clients: int) -> None:
    async def client(session: aiohttp.ClientSession, c: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            body = {"inputs": {"user_id": f"u{c}", "n": i}}
            try:
                async with session.post(url, json=body) as resp:
                    if resp.status == 200:
                        answered.append((await resp.json())["request_id"])
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.01)

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session, c) for c in range(clients)))


def test_sigkill_under_load_in_sync_mode_loses_no_answered_request(stack: Stack) -> None:
    cfg = echo_config(stack, {"durability": "sync"})
    gw = stack.gateway(cfg)
    answered: list[str] = []
    stop = threading.Event()
    loader = threading.Thread(
        target=lambda: asyncio.run(hammer(gw.predict_url("echo"), stop, answered, 16))
    )
    loader.start()
    try:
        assert wait_until(lambda: len(answered) >= 300, timeout=30)
        gw.proc.kill(signal.SIGKILL)
        gw.proc.wait(10)
    finally:
        stop.set()
        loader.join(15)
    assert not loader.is_alive()
    got = set(answered)

    restarted = stack.gateway(cfg, name="again")  # start-up recovers the tail
    http_json(restarted.predict_url("echo"), {"inputs": {"user_id": "after", "n": 1}})
    restarted.proc.stop(grace=5)
    store = SegmentLog(cfg["log"]["path"], "inference")
    assert verify(store.lines()).ok
    logged = {f["request_id"] for f in select(store, Filter())}
    assert got - logged == set(), f"{len(got - logged)} answered requests missing from the log"
    cli = subprocess.run(
        [PY, "-m", "failwell", "log", "verify", "-c", str(restarted.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_consumer_killed_between_records_resumes_without_gap_or_duplicate(stack: Stack) -> None:
    cfg = echo_config(stack, {})
    log = SegmentLog(cfg["log"]["path"], "inference", writer=True)
    for i in range(1, 41):
        log.append([{"time": time.time(), "route": "echo", "i": i}])
    log.close()
    path = stack.tmp / "g.yaml"
    path.write_text(json.dumps(cfg))
    offset = Path(cfg["log"]["path"]) / "inference" / "consumers" / "joiner"
    cmd = [PY, "-m", "failwell", "log", "tail", "-c", str(path), "--consumer", "joiner"]
    first = subprocess.Popen([*cmd, "--follow", "--pause", "0.3"], stdout=subprocess.PIPE)
    try:
        assert wait_until(lambda: offset.exists() and offset.read_text().strip() == "7", 30)
        first.send_signal(signal.SIGKILL)
        out1, _ = first.communicate(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(5)
    second = subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    seqs = [json.loads(line)["seq"] for line in (out1 + second.stdout).splitlines()]
    assert seqs == list(range(1, 41))


def test_replay_against_a_second_gateway_reproduces_a_deterministic_route(stack: Stack) -> None:
    cfg_a = echo_config(stack, {"durability": "batch"}, name="a")
    a = stack.gateway(cfg_a, name="a")
    for i in range(25):
        http_json(a.predict_url("echo"), {"inputs": {"user_id": f"u{i}", "n": i}})
    a.proc.stop(grace=5)  # a clean stop flushes the batch
    b = stack.gateway(echo_config(stack, None, name="b"), name="b")
    result = subprocess.run(
        [PY, "-m", "failwell", "log", "replay", "-c", str(a.config_path), "--to", b.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    row = [line for line in result.stdout.splitlines() if line.strip().startswith("│ 25")]
    assert row, result.stdout
    cells = [c.strip() for c in row[0].strip("│ ").split("│")]
    assert cells[:5] == ["25", "25", "0", "25", "0"], result.stdout


def test_redis_streams_backend_chains_records_from_a_gateway_and_two_writers(
    stack: Stack,
) -> None:
    redis = stack.redis()
    cfg = echo_config(stack, {"backend": "redis", "redis_url": redis.url, "durability": "sync"})
    gw = stack.gateway(cfg)
    for i in range(10):
        http_json(gw.predict_url("echo"), {"inputs": {"user_id": "r", "n": i}})
    log_cfg = LogConfig.model_validate(cfg["log"])
    writers = [RedisStreamLog(redis.url, "inference", log_cfg.redis_prefix) for _ in range(2)]

    def write(w: RedisStreamLog, tag: str) -> None:
        for i in range(50):
            w.append([{"writer": tag, "i": i}])

    threads = [threading.Thread(target=write, args=(w, str(n))) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    reader = RedisStreamLog(redis.url, "inference", log_cfg.redis_prefix)
    v = verify(reader.lines())
    assert v.ok and v.checked == 110, v
    assert sum(1 for r in scan(reader) if b'"request_id"' in r.body) == 10
    reader.set_offset("exporter", 42)
    assert [r.seq for r in reader.read(reader.get_offset("exporter"), 3)] == [43, 44, 45]
    audit = RedisStreamLog(redis.url, "audit", log_cfg.redis_prefix)
    audited = verify(audit.lines())
    assert audited.ok and audited.checked >= 1  # the gateway's start, with its config hash
    for w in [*writers, reader, audit]:
        w.close()
