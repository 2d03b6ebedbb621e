"""Breaker openings shared by the fleet: a replica one gateway opens is skipped by all.

Each gateway's breakers stay the truth for its requests: the request path reads only local
state and never waits on Redis. A local move to open is published (with the seconds the breaker
stays open) and recorded in the hash ``{failwell:NAME}:breakers`` (field ``BACKEND/REPLICA`` →
``{"until": wall-clock end}``; the key expires after the last opening ends). Another gateway
applies a published opening to its own breaker of that replica with ``Breaker.trip``, which
starts the same recovery timer there: each gateway then probes the replica half-open by itself.
Closing is not shared: a breaker closes where a probe call succeeds.

On (re)connect the hash is read (openings still running are applied here) and the breakers
open here that the hash does not know are published, so an outage of Redis heals both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from failwell.fleet.link import FleetLink
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.routing.pool import Pool

KIND = "breaker"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class BreakerSync:
    def __init__(self, link: FleetLink) -> None:
        self.link = link
        self.hash = link.key("breakers")
        self._breakers: dict[str, Breaker] = {}  # "BACKEND/REPLICA" → the breaker serving now
        self._watched: dict[int, Breaker] = {}  # held, so no id is reused while it is here
        self._applying = False
        link.subscribe(KIND, self._apply)
        link.on_connect(self._reconcile)

    def bind(self, pools: Mapping[str, Pool]) -> None:
        """Share the breakers of ``pools`` (the topology serving from now on)."""
        breakers: dict[str, Breaker] = {}
        watched: dict[int, Breaker] = {}
        for backend, pool in pools.items():
            for replica in pool.replicas:
                field, breaker = f"{backend}/{replica.label}", replica.breaker
                breakers[field] = breaker
                watched[id(breaker)] = breaker
                if id(breaker) not in self._watched:
                    breaker.on_change(self._listener(field, breaker))
        self._breakers, self._watched = breakers, watched

    def _listener(self, field: str, breaker: Breaker) -> Any:
        def changed(old: BreakerState, new: BreakerState) -> None:
            if new is BreakerState.OPEN and not self._applying:
                self._share(field, breaker.open_for())

        return changed

    def _share(self, field: str, seconds: float) -> None:
        until = self.link.clock.wall() + seconds
        record = _encode({"until": until, "i": self.link.me})
        ttl = int(seconds * 1000) + 1000
        key = self.hash

        def state(pipe: Any) -> None:
            pipe.hset(key, field, record)
            pipe.pexpire(key, ttl, nx=True)
            pipe.pexpire(key, ttl, gt=True)

        self.link.publish(KIND, {"b": field, "for": seconds}, state)

    def _trip(self, field: str, seconds: float) -> None:
        breaker = self._breakers.get(field)
        if breaker is None:
            return  # a replica this gateway does not serve (another config)
        self._applying = True
        try:
            breaker.trip(seconds)
        finally:
            self._applying = False

    def _apply(self, message: dict[str, Any]) -> None:
        self._trip(str(message["b"]), float(message["for"]))

    async def _reconcile(self, redis: Any) -> None:
        now = self.link.clock.wall()
        remote: dict[str, float] = {}
        for raw_field, raw in (await redis.hgetall(self.hash)).items():
            remote[raw_field.decode()] = float(_decode(raw)["until"])
        stale = [field for field, until in remote.items() if until <= now]
        if stale:
            await redis.hdel(self.hash, *stale)
        for field, until in remote.items():
            if until > now:
                self._trip(field, until - now)
        for field, breaker in self._breakers.items():
            seconds = breaker.open_for()
            if seconds > 0 and remote.get(field, 0.0) < now + seconds - 0.001:
                self._share(field, seconds)
