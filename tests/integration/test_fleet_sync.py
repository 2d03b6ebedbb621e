"""Gateways of one fleet share breaker openings, flags, faults and cached answers through a
real redis-server: in-process instances (each its own link, breakers, flags, fault book and
cache) so the test can look inside each one."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.config import parse_config
from failwell.config.fleet import FleetConfig
from failwell.contracts import Answer, Request, Result
from failwell.faults.flags import Flags
from failwell.faults.injection import FaultBook, FaultKind, FaultSpec
from failwell.fleet.fleet import Fleet
from failwell.gateway import Gateway
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.resilience.retry import RetryPolicy
from failwell.routing.pool import Pool, Replica
from failwell.testing import FakeAdapter
from tests.integration.conftest import Stack


async def _never(request: Request, timeout: float) -> Result:
    raise AssertionError("not called")


class Instance:
    def __init__(self, name: str, url: str) -> None:
        self.registry = CollectorRegistry()
        config = FleetConfig(redis=url, instance=name, reconnect=0.05, max_reconnect=0.2)
        self.fleet = Fleet(config, self.registry)
        replicas = [
            Replica(label, FakeAdapter(_never), Breaker(3, 30.0, 1)) for label in ("r1", "r2")
        ]
        self.pool = Pool("model", replicas, RetryPolicy(1, 0, 0), 1.0)
        self.fleet.bind({"model": self.pool})

    def breaker(self, label: str) -> Breaker:
        return next(r.breaker for r in self.pool.replicas if r.label == label)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def test_an_opening_reaches_every_instance_and_survives_a_redis_outage(stack: Stack) -> None:
    redis = stack.redis()

    async def scenario() -> None:
        a, b = Instance("a", redis.url), Instance("b", redis.url)
        await a.fleet.link.start()
        await b.fleet.link.start()
        try:
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up)
            for _ in range(3):
                a.breaker("r1").record_failure()
            assert a.breaker("r1").state is BreakerState.OPEN
            assert await until(lambda: b.breaker("r1").state is BreakerState.OPEN)
            assert b.breaker("r2").state is BreakerState.CLOSED
            assert 29.0 < b.breaker("r1").open_for() <= 30.5
            assert b.metric("failwell_fleet_propagation_seconds_count", kind="breaker") >= 1
            assert a.metric("failwell_fleet_messages_total", kind="breaker", direction="out") >= 1
            # b's own breaker moved to open by a's word: b does not echo it back
            await asyncio.sleep(0.1)
            assert a.metric("failwell_fleet_messages_total", kind="breaker", direction="in") == 0

            # A gateway that joins later reads the opening from the hash.
            c = Instance("c", redis.url)
            await c.fleet.link.start()
            try:
                assert await until(lambda: c.breaker("r1").state is BreakerState.OPEN)
            finally:
                await c.fleet.link.stop()

            # Redis dies: each keeps serving on its own breakers; an opening made meanwhile
            # reaches the others once Redis is back (an empty one: nothing was saved).
            redis.proc.kill(signal.SIGKILL)
            redis.proc.wait(5)
            assert await until(lambda: not a.fleet.link.up and not b.fleet.link.up)
            for _ in range(3):
                b.breaker("r2").record_failure()
            assert b.breaker("r2").state is BreakerState.OPEN
            assert a.breaker("r2").state is BreakerState.CLOSED
            stack.redis(port=redis.port)
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up, timeout=15)
            assert await until(lambda: a.breaker("r2").state is BreakerState.OPEN)
            assert a.metric("failwell_fleet_reconnects_total") >= 1
        finally:
            await a.fleet.link.stop()
            await b.fleet.link.stop()

    asyncio.run(scenario())


class Controls:
    def __init__(self, name: str, url: str) -> None:
        self.registry = CollectorRegistry()
        config = FleetConfig(redis=url, instance=name, reconnect=0.05, max_reconnect=0.2)
        self.fleet = Fleet(config, self.registry)
        self.flags, self.book = Flags(), FaultBook()
        self.fleet.share_controls(self.flags, self.book)


SPEC = FaultSpec(kind=FaultKind.ERROR, backend="model", duration=60.0)


def test_flags_and_faults_set_on_one_instance_are_obeyed_by_all(stack: Stack) -> None:
    redis = stack.redis()

    async def scenario() -> None:
        a, b = Controls("a", redis.url), Controls("b", redis.url)
        await a.fleet.link.start()
        await b.fleet.link.start()
        try:
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up)
            a.flags.set("backend:model", False)
            assert await until(lambda: not b.flags.enabled("backend:model"))
            fault = a.book.add(SPEC)
            assert fault.id == "f1.a"
            assert await until(lambda: [f.id for f in b.book.active()] == ["f1.a"])
            assert b.book.matching("model", "r1")[0].expires == fault.expires
            b.book.remove("f1.a")  # cleared on another instance than the one that made it
            assert await until(lambda: a.book.active() == [])

            # A late joiner reads both from the hashes.
            c = Controls("c", redis.url)
            c.book.add(SPEC)  # made before it joins: pushed when it connects
            await c.fleet.link.start()
            try:
                assert await until(lambda: not c.flags.enabled("backend:model"))
                assert await until(lambda: [f.id for f in a.book.active()] == ["f1.c"])
            finally:
                await c.fleet.link.stop()

            # Redis dies and comes back empty: the newer flag change wins everywhere.
            redis.proc.kill(signal.SIGKILL)
            redis.proc.wait(5)
            assert await until(lambda: not a.fleet.link.up and not b.fleet.link.up)
            b.flags.set("backend:model", True)
            assert not a.flags.enabled("backend:model")
            stack.redis(port=redis.port)
            assert await until(lambda: a.fleet.link.up and b.fleet.link.up, timeout=15)
            assert await until(lambda: a.flags.enabled("backend:model"))
            assert b.flags.enabled("backend:model")
        finally:
            await a.fleet.link.stop()
            await b.fleet.link.stop()

    asyncio.run(scenario())


def gateway_config(name: str, url: str, fail: bool) -> dict[str, Any]:
    return {
        "gateway": {"cache": {"path": ":memory:"}},
        "backends": {
            "echo": {
                "protocol": "python",
                "target": "failwell.testing.models:Echo",
                "args": {"fail": fail},
            }
        },
        "routes": {
            "r": {
                "input": {"x": "str"},
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "cache"},
                    {"name": "static", "value": "static"},
                ],
            }
        },
        "fleet": {"redis": url, "instance": name, "reconnect": "50ms", "max_reconnect": "200ms"},
    }


def test_the_cache_tier_answers_with_another_gateways_answer(stack: Stack) -> None:
    redis = stack.redis()

    async def scenario() -> None:
        a = Gateway(parse_config(gateway_config("a", redis.url, fail=False)))
        b = Gateway(parse_config(gateway_config("b", redis.url, fail=True)))
        async with a, b:
            assert a.fleet is not None and b.fleet is not None
            fa, fb = a.fleet, b.fleet
            assert await until(lambda: fa.link.up and fb.link.up)
            answer = await a.predict("r", {"x": "k1"})
            assert answer.tier == "primary"

            async def from_b() -> Answer:
                return await b.predict("r", {"x": "k1"})

            got = await from_b()
            for _ in range(100):  # a's write is queued: bounded wait until it lands
                if got.tier == "cache":
                    break
                await asyncio.sleep(0.02)
                got = await from_b()
            assert (got.tier, got.outputs) == ("cache", answer.outputs)
            assert b.metrics.registry.get_sample_value(
                "failwell_fleet_cache_reads_total", {"result": "hit"}
            )
            # now in b's own LRU: answers without Redis
            redis.proc.kill(signal.SIGKILL)
            redis.proc.wait(5)
            assert await until(lambda: not fb.link.up)
            assert (await from_b()).tier == "cache"
            # a key nobody stored: Redis is down, so no wait on it; the static tier answers
            assert (await b.predict("r", {"x": "k2"})).tier == "static"
            assert b.metrics.registry.get_sample_value(
                "failwell_fleet_cache_reads_total", {"result": "down"}
            )

    asyncio.run(scenario())


def test_a_pool_rebuilt_by_a_reload_shares_its_breakers(stack: Stack) -> None:
    redis = stack.redis()

    async def scenario() -> None:
        a = Gateway(parse_config(gateway_config("a", redis.url, fail=False)))
        b = Gateway(parse_config(gateway_config("b", redis.url, fail=False)))
        async with a, b:
            assert a.fleet is not None and b.fleet is not None
            fa, fb = a.fleet, b.fleet
            assert await until(lambda: fa.link.up and fb.link.up)
            changed = gateway_config("a", redis.url, fail=False)
            changed["backends"]["echo"]["breaker"] = {"failure_threshold": 2, "recovery": "20s"}
            answer = await a.reload(parse_config(changed))
            assert answer["rebuilt"] == ["echo"]
            breaker = a.pools["echo"].replicas[0].breaker
            breaker.record_failure()
            breaker.record_failure()
            assert breaker.state is BreakerState.OPEN
            theirs = b.pools["echo"].replicas[0].breaker
            assert await until(lambda: theirs.state is BreakerState.OPEN)

    asyncio.run(scenario())


def test_a_message_or_record_it_cannot_apply_leaves_the_link_up(stack: Stack) -> None:
    redis = stack.redis()

    async def scenario() -> None:
        a = Controls("a", redis.url)
        await a.fleet.link.redis.hset(a.fleet.link.key("faults"), "f9.x", b'{"id": "f9.x"}')
        await a.fleet.link.start()
        try:
            assert await until(lambda: a.fleet.link.up)  # the bad record was skipped
            bad = b'{"k": "fault", "i": "z", "at": 1, "e": "add", "f": {"id": "f1.z"}}'
            await a.fleet.link.redis.publish(a.fleet.link.channel, bad)
            await a.fleet.link.redis.publish(a.fleet.link.channel, b"not json")
            await asyncio.sleep(0.2)
            b = Controls("b", redis.url)
            await b.fleet.link.start()
            try:
                assert await until(lambda: b.fleet.link.up)
                b.flags.set("backend:model", False)
                assert await until(lambda: not a.flags.enabled("backend:model"))
            finally:
                await b.fleet.link.stop()
            assert a.fleet.link.up
        finally:
            await a.fleet.link.stop()

    asyncio.run(scenario())


def test_a_lease_holder_that_lost_its_lease_cannot_write(stack: Stack) -> None:
    """One holder at a time; a holder whose lease ran out in Redis (here: its key dropped, as
    when the holder is paused past it) has its fenced writes refused by Redis even while its
    own clock still says it leads; the next holder gets a larger token."""
    redis = stack.redis()

    async def scenario() -> None:
        registries = [CollectorRegistry(), CollectorRegistry()]
        fleets = [
            Fleet(FleetConfig(redis=redis.url, instance=name, lease=30.0), registry)
            for name, registry in zip(("a", "b"), registries, strict=True)
        ]
        a, b = (f.lease for f in fleets)
        changes: list[bool] = []
        a.on_change(changes.append)
        await a.renew()
        await b.renew()
        assert a.leading and not b.leading and changes == [True]
        assert await a.fenced_hset("rollouts", "r/t", b"a1")
        assert not await b.fenced_hset("rollouts", "r/t", b"b1")  # b does not lead

        await a.link.redis.delete(a.key)  # a's lease ends in Redis; a has not noticed
        await b.renew()
        assert b.leading and b.token > a.token and a.leading
        assert not await a.fenced_hset("rollouts", "r/t", b"a2")  # refused in Redis
        assert await b.fenced_hset("rollouts", "r/t", b"b2")
        assert await a.link.redis.hget(a.link.key("rollouts"), "r/t") == b"b2"
        value = registries[0].get_sample_value(
            "failwell_fleet_fenced_writes_total", {"result": "refused"}
        )
        assert value == 1.0

        await a.renew()  # a learns it lost the lease
        assert not a.leading and changes == [True, False]
        held = b.token
        await b.stop()  # released: a takes it at once
        await a.renew()
        assert a.leading and a.token > held
        for fleet in fleets:
            await fleet.lease.stop()
            await fleet.link.stop()

    asyncio.run(scenario())


def test_the_leaders_rotation_verdicts_reach_the_followers(stack: Stack) -> None:
    """Only the leader probes: a replica it takes out of rotation is out on every other
    process, and a process that joins later reads the verdict from the hash."""
    redis = stack.redis()

    async def scenario() -> None:
        seen: dict[str, list[tuple[str, str, bool]]] = {"a": [], "b": [], "c": []}
        fleets = {}
        for name in ("a", "b"):
            config = FleetConfig(redis=redis.url, instance=name, reconnect=0.05)
            fleet = fleets[name] = Fleet(config, CollectorRegistry())
            fleet.share_rotation(lambda *v, n=name: seen[n].append(v))
            await fleet.link.start()
        a, b = fleets["a"], fleets["b"]
        try:
            assert await until(lambda: a.link.up and b.link.up)
            await a.lease.renew()
            await b.lease.renew()
            assert a.lease.leading and not b.lease.leading
            assert a.rotation is not None and b.rotation is not None
            b.rotation.changed("model", "r2", False)  # a follower's change is not shared
            a.rotation.changed("model", "r1", False)
            assert await until(lambda: seen["b"] == [("model", "r1", False)])
            assert seen["a"] == []  # the leader does not apply its own word

            c = Fleet(FleetConfig(redis=redis.url, instance="c"), CollectorRegistry())
            c.share_rotation(lambda *v: seen["c"].append(v))
            await c.link.start()
            try:
                assert await until(lambda: seen["c"] == [("model", "r1", False)])
            finally:
                await c.link.stop()
        finally:
            for fleet in fleets.values():
                await fleet.lease.stop()
                await fleet.link.stop()

    asyncio.run(scenario())
