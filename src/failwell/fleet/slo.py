"""SLO counts of every process of a fleet in one place: the fleet's burn rates.

Each process counts its requests locally (the request path never touches Redis); every
``FLUSH`` seconds one script per route adds what was counted since the last flush to the
fleet's running totals, and records them as the totals at the end of the current bucket:

    {failwell:NAME}:slo:ROUTE@WIDTH:total    hash slot → the fleet's count since the totals began
    {failwell:NAME}:slo:ROUTE@WIDTH:ends     hash epoch → "slot,count,...": the totals as the
                                             last flush of bucket [epoch·width, +width) left them
    {failwell:NAME}:slo:ROUTE@WIDTH:epochs   sorted set of the epochs ``ends`` holds

(``WIDTH``, in ms, is the route's local bucket width: a tenth of its shortest burn window, so
two configs with other windows never mix their buckets.) As in ``observe/window.py``, the
fleet's counts over the last k buckets are ``total - ends[the newest epoch ≤ now - k]``: one
read script per route answers every window asked for, whatever its length (the SLO evaluator
of the lease holder reads them each evaluation, ``GET /admin/slo`` on demand). ``ends`` keeps
the epochs of the route's longest window and the newest one before it; every key expires
after that window once no process flushes (the fleet's counts then start again from zero).

Status pages (``/admin/status``, ``/dashboard``) read the last counts read here (``recent``):
the SLO evaluator's, or the flushing task's, which reads the windows a status page asked for
after each flush for a minute after it asked. Only when those are older than ``STALE`` does a
status request read them itself, for at most the time it allows.

While Redis is down the counts wait here and are added by the next flush that succeeds, into
the bucket of that flush (an outage shifts them in time, never loses them). The bucket of a
flush is its process's wall clock: gateways on several machines need clocks that agree within
a bucket (a count read as negative is read as zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Counter
from redis.exceptions import RedisError

from failwell.background import Background
from failwell.fleet.link import FleetLink
from failwell.observe.logging import log

FLUSH = 1.0
STALE = 3 * FLUSH  # counts read longer ago than this are read again for a status page
ASKED = 60.0  # the flushing task reads the windows a status page asked for this long after
Counts = dict[str, dict[float, list[int]]]  # route → window (s) → the fleet's counts per slot

# KEYS total, ends, epochs; ARGV epoch, epochs kept, ttl (ms), then slot, amount pairs
_FLUSH = """
for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], ARGV[1], table.concat(redis.call('HGETALL', KEYS[1]), ','))
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
for i = 1, #old - 1 do
  redis.call('HDEL', KEYS[2], old[i])
  redis.call('ZREM', KEYS[3], old[i])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

# KEYS total, ends, epochs; ARGV the epoch each window starts after → {total, end of each}
_READ = """
local out = {redis.call('HGETALL', KEYS[1])}
for i = 1, #ARGV do
  local found = redis.call('ZREVRANGEBYSCORE', KEYS[3], ARGV[i], '-inf', 'LIMIT', 0, 1)
  out[i + 1] = found[1] and redis.call('HGET', KEYS[2], found[1]) or ''
end
return out
"""


class Counted(Protocol):
    """What the fleet needs of one route's local SLO counts."""

    @property
    def width(self) -> float: ...  # seconds per bucket

    @property
    def span(self) -> float: ...  # the longest window

    @property
    def cumulative(self) -> Sequence[int]: ...  # totals since start, per slot


def _slots(flat: Sequence[bytes], size: int) -> list[int]:
    """Counts per slot from a flat ``slot, count, ...`` list."""
    out = [0] * size
    for i in range(0, len(flat) - 1, 2):
        slot = int(flat[i])
        if slot < size:
            out[slot] = int(flat[i + 1])
    return out


class FleetSlo:
    def __init__(self, link: FleetLink, fallbacks: Counter) -> None:
        self.link = link
        self.routes: Mapping[str, Counted] = {}
        self._fallbacks = fallbacks  # failwell_fleet_fallbacks_total{part="slo"}
        self._flushed: dict[tuple[str, int], list[int]] = {}  # (route, id of counts) → totals
        self._task = Background("fleet-slo")
        self._flush: Any = link.redis.register_script(_FLUSH)
        self._read: Any = link.redis.register_script(_READ)
        self._last: tuple[float, Counts] | None = None  # (wall clock, counts) of the last read
        self._asked: dict[str, list[float]] = {}  # windows a status page asked for
        self._asked_until = 0.0

    @property
    def instance(self) -> str:
        """This process's name in the fleet."""
        return self.link.me

    def bind(self, routes: Mapping[str, Counted]) -> None:
        """Flush the counts of ``routes`` from now on (a route's counts kept across a reload
        keep their flushed totals)."""
        self.routes = routes
        self._asked = {name: w for name, w in self._asked.items() if name in routes}
        self._last = None  # a route's windows may have changed with it
        keep = {(name, id(c)) for name, c in routes.items()}
        self._flushed = {k: v for k, v in self._flushed.items() if k in keep}

    def _keys(self, route: str, counts: Counted) -> list[str]:
        series = self.link.key(f"slo:{route}@{round(counts.width * 1000)}")
        return [f"{series}:total", f"{series}:ends", f"{series}:epochs"]

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        with contextlib.suppress(RedisError, OSError):
            await self.flush()  # the last counts of a process that stops

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(FLUSH)
            try:
                await self.flush()
                if self._asked and self.link.clock.wall() < self._asked_until:
                    await self.windows(self._asked)  # kept fresh for the status pages
                failing = False
            except Exception as exc:  # Redis down (or a bug): the counts wait for the next try
                if not failing:
                    log.warning("fleet_slo_flush_failed", error=repr(exc))
                failing = True

    async def flush(self) -> None:
        """Add the counts made here since the last flush to the fleet's totals."""
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
                kept = math.ceil(counts.span / counts.width) + 1
                ttl = int((counts.span + 2 * counts.width) * 1000)
                args: list[int] = [int(now / counts.width), kept, ttl]
                for slot, amount in enumerate(delta):
                    if amount:
                        args += [slot, amount]
                await self._flush(keys=self._keys(name, counts), args=args, client=pipe)
                pending.append((key, totals))
            if pending:
                await pipe.execute()
        self._flushed.update(pending)

    async def windows(
        self, wanted: Mapping[str, Sequence[float]]
    ) -> dict[str, dict[float, list[int]]] | None:
        """Per route, per window (seconds), the fleet's counts per slot over that window, in
        one round trip; None while Redis is unreachable (counted as a fallback). A route this
        process does not count is left out."""
        now = self.link.clock.wall()
        asked: list[tuple[str, Counted, list[float]]] = []
        for route, windows in wanted.items():
            counts = self.routes.get(route)
            if counts is not None and windows:
                asked.append((route, counts, list(windows)))
        if not asked:
            return {}
        if not self.link.up:
            self._fallbacks.inc()
            return None
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                for route, counts, windows in asked:
                    newest = int(now / counts.width)
                    bases = [newest - max(1, math.ceil(w / counts.width)) for w in windows]
                    await self._read(keys=self._keys(route, counts), args=bases, client=pipe)
                replies: list[list[Any]] = await pipe.execute()
        except (RedisError, OSError):
            self._fallbacks.inc()
            return None
        out: dict[str, dict[float, list[int]]] = {}
        for (route, counts, windows), reply in zip(asked, replies, strict=True):
            size = len(counts.cumulative)
            total = _slots(reply[0], size)
            out[route] = {}
            for window, end in zip(windows, reply[1:], strict=True):
                base = _slots(end.split(b",") if end else [], size)
                out[route][window] = [max(0, t - b) for t, b in zip(total, base, strict=True)]
        self._last = (now, out)
        return out

    async def recent(
        self, wanted: Mapping[str, Sequence[float]], timeout: float
    ) -> tuple[float, Counts] | None:
        """(when they were read, the counts) of ``wanted``'s windows: the last read when it
        holds them all and is at most ``STALE`` old, else read now within ``timeout`` seconds;
        None while Redis is unreachable or slower than that."""
        now = self.link.clock.wall()
        for route, windows in wanted.items():
            asked = self._asked.setdefault(route, [])
            asked += [w for w in windows if w not in asked]
        self._asked_until = now + ASKED
        last = self._last
        if last is not None and now - last[0] <= STALE and _holds(last[1], wanted):
            return last
        try:
            counts = await asyncio.wait_for(self.windows(wanted), timeout)
        except TimeoutError:
            self._fallbacks.inc()
            return None
        return None if counts is None else (now, counts)


def _holds(counts: Counts, wanted: Mapping[str, Sequence[float]]) -> bool:
    return all(w in counts.get(route, {}) for route, windows in wanted.items() for w in windows)
