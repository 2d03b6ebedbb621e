"""The control lease: one process of a fleet (a worker of ``failwell serve --workers N`` or a
gateway on another machine) runs the control loops, the one holding this lease.

    {failwell:NAME}:lease:control   hash {holder, token}, expiring after ``fleet.lease``
    {failwell:NAME}:lease:fence     the last token handed out (INCR: tokens only grow)

Taking and renewing is one Lua script (atomic): the holder renews its own lease; anyone takes a
lease that has expired, with a new token. A controller write is a script made with ``script``
and run with ``fenced``: it begins with the fence, which lets the write through only while the
lease names this process with the token it carries, so a leader that was paused (SIGSTOP, a
long GC, a partition) past its lease cannot act on its return: its writes are refused in
Redis, whatever its own clock believes. (The holder is checked as well as the token: a Redis
that came back empty hands out tokens from 1 again.)

Locally ``leading`` also ends on time: at ``renewed + lease * SAFETY`` on the monotonic clock
(measured from before the renewal was sent), with or without an answer from Redis, so a
process cut off from Redis stops its control loops before another can take over. Redis down
for all: nobody leads until it returns (control loops pause; the request path never waits).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from failwell.background import Background
from failwell.fleet.link import FleetLink
from failwell.observe import families_planes
from failwell.observe.logging import log

SAFETY = 0.8  # a leader stops believing it leads after this share of the lease
RENEW = 3  # renewals per lease

_TAKE = """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
if holder then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The head of every fenced script: KEYS[1] the lease, ARGV[1] the holder, ARGV[2] its token.
_FENCE = """
local lease = redis.call('HMGET', KEYS[1], 'holder', 'token')
if lease[1] ~= ARGV[1] or lease[2] ~= ARGV[2] then return 0 end
"""

# KEYS[2] the hash written; ARGV[3] field, ARGV[4] value
_HSET = """
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""


class Lease:
    """This process's claim on the fleet's control lease (a ``Leadership``)."""

    def __init__(
        self, link: FleetLink, seconds: float, registry: CollectorRegistry, name: str = "control"
    ) -> None:
        self.link, self.seconds = link, seconds
        self.key = link.key(f"lease:{name}")
        self.fence = link.key(f"lease:{name}:fence")
        self.token = 0  # the token held (0: none)
        self._valid_until = 0.0  # monotonic
        self._callbacks: list[Callable[[bool], None]] = []
        self._was = False
        self._task = Background("fleet-lease")
        self._take: Any = link.redis.register_script(_TAKE)
        self._release: Any = link.redis.register_script(_RELEASE)
        self._hset = self.script(_HSET)
        self._leader = families_planes.FLEET_LEADER.gauge(registry)
        self._changes = families_planes.FLEET_LEADER_CHANGES.counter(registry)
        self._fenced = families_planes.FLEET_FENCED.counter(registry)

    @property
    def leading(self) -> bool:
        return self.token > 0 and self.link.clock.now() < self._valid_until

    def on_change(self, callback: Callable[[bool], None]) -> None:
        self._callbacks.append(callback)

    def script(self, body: str) -> Any:
        """A script for ``fenced``: ``body`` runs only while the caller holds the lease (it
        returns 0 otherwise); its own keys start at KEYS[2] and its arguments at ARGV[3]."""
        return self.link.redis.register_script(_FENCE + body)

    async def fenced(self, script: Any, keys: list[str], args: list[Any]) -> int | None:
        """Run ``script`` as this lease's holder: its answer (0 or less: refused), or None
        when Redis is unreachable. Refused at once when this process no longer leads."""
        if not self.leading:
            self._fenced.labels("refused").inc()
            return 0
        try:
            done = int(await script(keys=[self.key, *keys], args=[self.link.me, self.token, *args]))
        except (RedisError, OSError):
            self._fenced.labels("down").inc()
            return None
        self._fenced.labels("done" if done > 0 else "refused").inc()
        if done <= 0:
            log.warning("fleet_write_fenced", instance=self.link.me, token=self.token, keys=keys)
        return done

    async def fenced_hset(self, name: str, field: str, value: bytes | str) -> bool:
        """HSET ``{failwell:NAME}:<name>`` ``field`` only if this process holds the lease now
        (checked in Redis, with the token); False when refused or Redis is unreachable."""
        return bool(await self.fenced(self._hset, [self.link.key(name)], [field, value]))

    # -- the renewal task ---------------------------------------------------------------------

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        if self.token:
            with contextlib.suppress(RedisError, OSError):  # the next leader need not wait
                await self._release(keys=[self.key], args=[self.token])
        self.token = 0
        self._notify()

    async def _run(self) -> None:
        clock = self.link.clock
        while True:
            await self.renew()
            wait = self.seconds / RENEW
            if self.token:  # wake up in time to step down if renewals keep failing
                wait = min(wait, max(0.0, self._valid_until - clock.now()))
            await asyncio.sleep(wait)

    async def renew(self) -> None:
        """Take or renew the lease once; step down when it is lost or has run out here."""
        clock = self.link.clock
        sent = clock.now()
        try:
            token = int(
                await self._take(keys=[self.key, self.fence], args=[self.link.me, self._ms()])
            )
        except (RedisError, OSError) as exc:
            if self.token and not self.leading:
                log.warning("fleet_lease_lost", instance=self.link.me, error=repr(exc))
                self.token = 0
            self._notify()
            return
        if self.token and token != self.token:  # lost: another holds it, or held it meanwhile
            self.token = 0
            self._notify()
        if token:
            self.token = token
            self._valid_until = sent + self.seconds * SAFETY
        self._notify()

    def _ms(self) -> int:
        return max(1, int(self.seconds * 1000))

    def _notify(self) -> None:
        now = self.leading
        if now is self._was:
            return
        self._was = now
        self._leader.set(1 if now else 0)
        self._changes.labels("leader" if now else "follower").inc()
        log.info("fleet_leader" if now else "fleet_follower", instance=self.link.me)
        for callback in self._callbacks:
            callback(now)
