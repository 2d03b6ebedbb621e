"""The fleet link against a real redis-server that is SIGKILLed and started again: once the link
is back up, what it sends lands (no write is lost to a connection the old server left behind).
A loop stopped in the middle of a Redis call stops."""

from __future__ import annotations

import asyncio
import random
import signal
import threading

import pytest
import redis as redis_client
from prometheus_client import CollectorRegistry, generate_latest
from redis.asyncio import Redis

from failwell import background
from failwell.background import Background
from failwell.config.fleet import FleetConfig
from failwell.fleet.link import FleetLink
from tests.integration.conftest import Stack, metric_value


def test_writes_after_a_redis_restart_land(stack: Stack) -> None:
    redis = stack.redis()
    r = redis_client.Redis(port=redis.port)
    registry = CollectorRegistry()
    config = FleetConfig(redis=redis.url, instance="a", reconnect=0.05, max_reconnect=0.2)

    def dropped() -> float:
        text = generate_latest(registry).decode()
        return sum(
            metric_value(text, "failwell_fleet_dropped_total", kind=kind) or 0.0
            for kind in ("answer", "flag")
        )

    async def up(link: FleetLink, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not link.up:
                await asyncio.sleep(0.02)

    def write(link: FleetLink, n: int) -> None:
        key = link.key(f"k{n}")
        link.write("answer", key, lambda pipe: pipe.set(key, n))
        link.publish("flag", {"n": n}, lambda pipe: pipe.hset(link.key("flags"), f"f{n}", n))

    async def scenario() -> None:
        link = FleetLink(config, registry)
        await link.start()
        try:
            await up(link)
            # several connections in the command client's pool, as a busy gateway has
            await asyncio.gather(*(link.redis.execute_command("PING") for _ in range(6)))
            write(link, 0)
            async with asyncio.timeout(5):
                while r.get(link.key("k0")) is None:
                    await asyncio.sleep(0.02)

            redis.proc.kill(signal.SIGKILL)
            redis.proc.wait(5)
            async with asyncio.timeout(10):
                while link.up:
                    await asyncio.sleep(0.02)
            before = dropped()
            stack.redis(port=redis.port)
            await up(link)
            for n in range(1, 21):
                write(link, n)
                await asyncio.sleep(0.03)
            await asyncio.sleep(0.3)
            assert link.up
            assert dropped() == before, "a write after the reconnect was given up"
            assert [r.get(link.key(f"k{n}")) for n in range(1, 21)] == [
                str(n).encode() for n in range(1, 21)
            ]
            assert len(r.hgetall(link.key("flags"))) == 20
        finally:
            await link.stop()

    asyncio.run(scenario())


def test_a_loop_in_a_redis_call_stops_when_asked(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py's asyncio client loses a task's cancellation now and then while a command is in
    # flight; a control loop stopped then must still stop (a shutdown awaits it).
    monkeypatch.setattr(background, "GRACE", 0.1, raising=False)
    redis = stack.redis()

    async def scenario() -> None:
        client = Redis.from_url(redis.url, socket_timeout=1.0)

        async def loop() -> None:
            while True:
                await client.hgetall("k")

        try:
            for _ in range(30):
                work = Background("redis-loop")
                work.start(loop())
                await asyncio.sleep(random.uniform(0.0, 0.003))
                await work.stop()
        finally:
            await client.aclose()

    # bounded from outside the loop: a stop that hangs cannot be cut off from inside it
    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "a stopped loop ran on (its cancellation was lost)"
