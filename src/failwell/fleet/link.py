"""The link between one gateway and its fleet's Redis: one pub/sub channel for changes, plain
keys and hashes for the state an instance reads when it joins or reconnects.

    {failwell:NAME}:events      channel: one JSON message per change ({"k": kind, "i": sender,
                                "at": sender's wall clock, ...})
    {failwell:NAME}:<kind>      the state of a kind (a hash), read on (re)connect

Nothing here is on a request path. Parts of the gateway hand changes to ``publish`` (a
synchronous call that only queues them); one sender task writes the queue to Redis in
pipelines: control changes at once, bulk writes (``write``: cached answers) after lingering
``BULK_LINGER`` for a batch to build up, the newest write per key only. One listener task holds the subscription; when
Redis is lost it marks the link down (queued writes are dropped and counted, each part keeps
serving on its local state, and the pool's connections to the lost server are closed),
reconnects with a doubling, jittered backoff, then runs every ``on_connect`` reconciler (each
reads the shared state and pushes what changed here meanwhile).

Messages from this instance are ignored on the way back; the time a message took to arrive
(sender's wall clock to ours, so clocks of different machines must agree) is observed per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from failwell.background import finish
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.fleet import FleetConfig
from failwell.observe import families_planes
from failwell.observe.logging import log

Op = Callable[[Any], None]  # adds commands to a redis pipeline
Handler = Callable[[dict[str, Any]], None]
Reconciler = Callable[[Any], Awaitable[None]]  # (the redis client) → reads and writes state

MAX_QUEUED = 10_000  # bulk writes waiting for Redis; beyond it the oldest are dropped
BATCH = 512
BULK_LINGER = 0.02  # one pipeline per batch, not per answer: the CPU of a write is per batch
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class FleetLink:
    def __init__(
        self, config: FleetConfig, registry: CollectorRegistry, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config, self.clock = config, clock
        self.me = config.me
        self.tag = "{failwell:" + config.name + "}"
        self.channel = f"{self.tag}:events"
        self.redis: Any = Redis.from_url(
            config.redis, socket_timeout=config.timeout, socket_connect_timeout=config.timeout
        )
        # The subscription waits for messages as long as it likes; the command client's PING
        # (each second) is what finds a hung Redis.
        self._subscriber: Any = Redis.from_url(
            config.redis, socket_timeout=None, socket_connect_timeout=config.timeout
        )
        self.up = False  # connected, subscribed and reconciled
        self._writable = False  # connected: changes may be queued (reconcilers publish too)
        self._control: deque[tuple[str, Op]] = deque()
        self._bulk: dict[str, tuple[str, Op]] = {}  # key written → (kind, op), oldest first
        self._handlers: dict[str, Handler] = {}
        self._reconcilers: list[Reconciler] = []
        self._wake = asyncio.Event()  # anything queued
        self._urgent = asyncio.Event()  # a control change queued: no lingering
        self._tasks: list[asyncio.Task[None]] = []
        self._connected_once = False
        self._up = families_planes.FLEET_UP.gauge(registry)
        self._reconnects = families_planes.FLEET_RECONNECTS.counter(registry)
        self._messages = families_planes.FLEET_MESSAGES.counter(registry)
        self._dropped = families_planes.FLEET_DROPPED.counter(registry)
        self._delay = families_planes.FLEET_PROPAGATION.histogram(registry)

    def key(self, name: str) -> str:
        """A key of this fleet, in its hash slot."""
        return f"{self.tag}:{name}"

    # -- what the parts call ----------------------------------------------------------------

    def subscribe(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` with each ``kind`` message another instance publishes."""
        self._handlers[kind] = handler

    def on_connect(self, reconciler: Reconciler) -> None:
        """Run ``reconciler`` on every (re)connection, after the subscription is in place."""
        self._reconcilers.append(reconciler)

    def publish(self, kind: str, message: dict[str, Any], state: Op | None = None) -> None:
        """Queue a change: ``state`` (commands that record it in Redis) then the message to the
        other instances. Never blocks; dropped (and counted) while Redis is down."""
        if not self._writable:
            self._dropped.labels(kind).inc()
            return
        data, channel = self.envelope(kind, message), self.channel

        def op(pipe: Any) -> None:
            if state is not None:
                state(pipe)
            pipe.publish(channel, data)

        self._control.append((kind, op))
        self._urgent.set()
        self._wake.set()

    def envelope(self, kind: str, message: dict[str, Any]) -> bytes:
        """``message`` as it goes out on the channel (counted as sent): for ``publish``, and for
        a script that publishes it with the change it makes."""
        self._messages.labels(kind, "out").inc()
        return _encode({"k": kind, "i": self.me, "at": self.clock.wall(), **message})

    def write(self, kind: str, key: str, op: Op) -> None:
        """Queue a bulk write of ``key`` (replacing one queued for it); never blocks."""
        if not self._writable:
            self._dropped.labels(kind).inc()
            return
        bulk = self._bulk
        if key in bulk:
            del bulk[key]
        elif len(bulk) >= MAX_QUEUED:
            del bulk[next(iter(bulk))]
            self._dropped.labels(kind).inc()
        bulk[key] = (kind, op)
        if not self._wake.is_set():
            self._wake.set()

    def count_dropped(self, kind: str, amount: int = 1) -> None:
        """Count writes of ``kind`` a part gave up before queueing them here."""
        self._dropped.labels(kind).inc(amount)

    # -- the tasks ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="fleet-listen"),
            loop.create_task(self._send(), name="fleet-send"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await finish(task)
        self._tasks = []
        self._set_up(False)
        for client in (self.redis, self._subscriber):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _set_up(self, up: bool) -> None:
        self.up = self._writable = up
        self._up.set(1 if up else 0)
        if not up:
            for kind, _ in [*self._control, *self._bulk.values()]:
                self._dropped.labels(kind).inc()
            self._control.clear()
            self._bulk.clear()

    async def _listen(self) -> None:
        wait = self.config.reconnect
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._writable = True  # reconcilers publish what changed here meanwhile
                for reconcile in self._reconcilers:
                    try:
                        await reconcile(self.redis)
                    except (KeyError, TypeError, ValueError) as exc:  # a record it cannot read
                        log.warning("fleet_reconcile_failed", instance=self.me, error=repr(exc))
                self._set_up(True)
                if self._connected_once:
                    self._reconnects.inc()
                    log.info("fleet_reconnected", instance=self.me)
                self._connected_once, wait = True, self.config.reconnect
                pinged = self.clock.now()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._dispatch(message["data"])
                    if self.clock.now() - pinged >= 1.0:
                        await self.redis.ping()  # a hung Redis is found here
                        pinged = self.clock.now()
            except (RedisError, OSError) as exc:
                if self.up or not self._connected_once:
                    log.warning("fleet_redis_down", instance=self.me, error=repr(exc))
                self._set_up(False)
                # The pool's idle connections are to the server that was lost: a write after
                # the reconnect would fail on one of them and be dropped. Open fresh ones.
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.connection_pool.disconnect()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, self.config.max_reconnect)

    def _dispatch(self, data: bytes) -> None:
        try:
            message = _decode(data)
            kind, sender, at = message["k"], message["i"], float(message["at"])
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            return  # not one of ours
        if sender == self.me:
            return
        handler = self._handlers.get(kind)
        if handler is None:
            return
        self._messages.labels(kind, "in").inc()
        self._delay.labels(kind).observe(max(0.0, self.clock.wall() - at))
        try:
            handler(message)
        except (KeyError, TypeError, ValueError) as exc:  # a message it cannot apply
            log.warning("fleet_message_refused", instance=self.me, kind=kind, error=repr(exc))

    async def _send(self) -> None:
        """One pipeline per wake-up: control changes at once, bulk writes after lingering (so
        answers stored meanwhile join the batch) unless a full batch is waiting."""
        while True:
            await self._wake.wait()
            if not self._control and len(self._bulk) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), BULK_LINGER)
            self._wake.clear()
            self._urgent.clear()
            if not self._writable or not (self._control or self._bulk):
                continue
            batch = [self._control.popleft() for _ in range(len(self._control))]
            while self._bulk and len(batch) < BATCH:
                batch.append(self._bulk.pop(next(iter(self._bulk))))
            if self._control or self._bulk:
                self._wake.set()  # more is waiting: the next round takes it
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for _, op in batch:
                        op(pipe)
                    await pipe.execute()
            except (RedisError, OSError, TypeError, msgspec.EncodeError):
                for kind, _ in batch:  # Redis failed, or an answer could not be encoded
                    self._dropped.labels(kind).inc()
