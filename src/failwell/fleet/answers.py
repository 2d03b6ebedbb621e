"""The answer cache shared by the fleet: the cache tier of any gateway answers with a tier-1
answer stored by any other.

    {failwell:NAME:answer:KEY}   {"o": outputs, "v": model version, "t": stored at}; expires
                                 after ``fleet.cache_ttl``. The hash tag is the whole key, so
                                 answers spread over a Redis Cluster's slots.

Writes: ``AnswerCache.put`` hands each answer to ``push``, which only queues it (the newest per
key), and skips a key written less than ``fleet.cache_refresh`` ago (the shared cache serves
stale answers: a hot key needs no write per answer); the fleet link's sender encodes and writes
queued answers in pipelines of up to 512, after any control change. While
Redis is down answers are not queued (counted as dropped): the shared cache misses them.

Reads: ``AnswerCache.get`` asks ``fetch`` last, after the LRU and SQLite missed; the cache tier
bounds the whole read by its time budget (``asyncio.wait_for``), the command by
``fleet.timeout``. While the link is down ``fetch`` answers None at once, without trying Redis.
"""

from __future__ import annotations

from typing import Any

import msgspec
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from failwell.fleet.link import FleetLink
from failwell.observe import families_planes
from failwell.store.cache import CachedAnswer

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


MAX_REMEMBERED = 100_000  # keys whose last write time is kept; forgotten all at once beyond


class SharedAnswerCache:
    def __init__(
        self, link: FleetLink, ttl: float, refresh: float, registry: CollectorRegistry
    ) -> None:
        self.link = link
        self._refresh = refresh
        self._written: dict[str, float] = {}  # key → monotonic time of its last queued write
        self._prefix = "{failwell:" + link.config.name + ":answer:"
        self._ttl = max(1, int(ttl * 1000))
        reads = families_planes.FLEET_CACHE_READS.counter(registry)
        self._hit, self._miss = reads.labels("hit"), reads.labels("miss")
        self._down, self._error = reads.labels("down"), reads.labels("error")

    def _key(self, key: str) -> str:
        return f"{self._prefix}{key}}}"

    def push(self, key: str, entry: CachedAnswer) -> None:
        now = self.link.clock.now()
        last = self._written.get(key)
        if last is not None and now - last < self._refresh:
            return
        if len(self._written) >= MAX_REMEMBERED:
            self._written.clear()
        self._written[key] = now
        name, ttl = self._key(key), self._ttl

        def write(pipe: Any) -> None:  # runs in the link's sender, off the request path
            value = _encode({"o": entry.outputs, "v": entry.model_version, "t": entry.stored_at})
            pipe.set(name, value, px=ttl)

        self.link.write("answer", name, write)

    async def fetch(self, key: str) -> CachedAnswer | None:
        if not self.link.up:
            self._down.inc()
            return None
        try:
            raw = await self.link.redis.get(self._key(key))
        except (RedisError, OSError):
            self._error.inc()
            return None
        if raw is None:
            self._miss.inc()
            return None
        try:
            data = _decode(raw)
            entry = CachedAnswer(data["o"], data["v"], float(data["t"]))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            self._error.inc()
            return None
        self._hit.inc()
        return entry
