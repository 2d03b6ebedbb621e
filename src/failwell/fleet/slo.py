"""SLO counts of every process of a fleet in one place: the fleet's burn rates.

Each process counts its requests locally (the request path never touches Redis); every
``FLUSH`` seconds a task adds what was counted since the last flush to time buckets in Redis:

    {failwell:NAME}:slo:<route>:<epoch>    hash: slot → count, for [epoch·width, +width)

(``width`` is the route's local bucket width: a tenth of its shortest burn window; a bucket
expires after the route's longest window). ``totals`` sums the buckets of a window over the
whole fleet. While Redis is down the counts wait here and are added on the next flush that
succeeds, into the bucket of that flush (so an outage shifts them in time, never loses them).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from redis.exceptions import RedisError

from failwell.fleet.link import FleetLink
from failwell.observe.logging import log

FLUSH = 1.0


class Counted(Protocol):
    """What the fleet needs of one route's local SLO counts."""

    @property
    def width(self) -> float: ...  # seconds per bucket

    @property
    def span(self) -> float: ...  # the longest window

    @property
    def cumulative(self) -> Sequence[int]: ...  # totals since start, per slot


class FleetSlo:
    def __init__(self, link: FleetLink) -> None:
        self.link = link
        self.routes: Mapping[str, Counted] = {}
        self._flushed: dict[tuple[str, int], list[int]] = {}  # (route, id of counts) → totals
        self._task: asyncio.Task[None] | None = None

    def bind(self, routes: Mapping[str, Counted]) -> None:
        """Flush the counts of ``routes`` from now on (a route's counts kept across a reload
        keep their flushed totals)."""
        self.routes = routes
        keep = {(name, id(c)) for name, c in routes.items()}
        self._flushed = {k: v for k, v in self._flushed.items() if k in keep}

    def _key(self, route: str, epoch: int) -> str:
        return self.link.key(f"slo:{route}:{epoch}")

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fleet-slo")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self.flush()  # the last counts of a process that stops

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(FLUSH)
            try:
                await self.flush()
                failing = False
            except Exception as exc:  # Redis down (or a bug): the counts wait for the next try
                if not failing:
                    log.warning("fleet_slo_flush_failed", error=repr(exc))
                failing = True

    async def flush(self) -> None:
        """Add the counts made here since the last flush to the fleet's buckets."""
        now = self.link.clock.wall()
        pending: list[tuple[tuple[str, int], list[int]]] = []
        async with self.link.redis.pipeline(transaction=False) as pipe:
            for name, counts in self.routes.items():
                key = (name, id(counts))
                totals = list(counts.cumulative)
                before = self._flushed.get(key, [0] * len(totals))
                delta = [t - b for t, b in zip(totals, before, strict=True)]
                if not any(delta):
                    continue
                bucket = self._key(name, int(now / counts.width))
                for slot, amount in enumerate(delta):
                    if amount:
                        pipe.hincrby(bucket, str(slot), amount)
                pipe.pexpire(bucket, int((counts.span + 2 * counts.width) * 1000))
                pending.append((key, totals))
            if pending:
                await pipe.execute()
        self._flushed.update(pending)

    async def totals(self, route: str, window: float) -> list[int] | None:
        """Per slot, the fleet's counts of ``route`` over the last ``window`` seconds (None:
        Redis is unreachable or the route unknown)."""
        counts = self.routes.get(route)
        if counts is None:
            return None
        now, width = self.link.clock.wall(), counts.width
        last = int(now / width)
        first = last - math.ceil(window / width) + 1
        summed = [0] * len(counts.cumulative)
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                for epoch in range(first, last + 1):
                    pipe.hgetall(self._key(route, epoch))
                buckets: list[dict[Any, Any]] = await pipe.execute()
        except (RedisError, OSError):
            return None
        for bucket in buckets:
            for slot, count in bucket.items():
                index = int(slot)
                if index < len(summed):
                    summed[index] += int(count)
        return summed
