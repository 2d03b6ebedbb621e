"""Rate limits as GCRA (the generic cell rate algorithm, a token bucket kept as one number).

Each key has a theoretical arrival time (TAT). A request at ``now`` is allowed when
``TAT - now <= burst_window`` (``burst_window = interval * (burst - 1)``); it then pushes the
TAT one ``interval`` (``1 / rate``) further. One float per key, O(1) per request, no timers.
``Gcra`` keeps the TATs in-process; ``RedisGcra`` keeps them in Redis behind one Lua script,
so every gateway sharing that Redis enforces one limit together.
"""

from __future__ import annotations

from typing import Protocol

from failwell.clock import SYSTEM_CLOCK, Clock


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: float, burst: int) -> float:
        """0 when the request may pass, else the seconds to wait before retrying."""
        ...


class Gcra:
    """In-process GCRA. Keys idle long enough to be full again are dropped on the way."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._max_keys = max_keys

    def check(self, key: str, rate: float, burst: int) -> float:
        now = self._clock.now()
        interval = 1.0 / rate
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        wait = tat - now - interval * (burst - 1)
        if wait > 1e-9:  # float rounding must not refuse the last request of a burst
            return wait
        if len(self._tat) >= self._max_keys and key not in self._tat:
            self._evict(now)
        self._tat[key] = tat + interval
        return 0.0

    async def acquire(self, key: str, rate: float, burst: int) -> float:
        return self.check(key, rate, burst)

    def _evict(self, now: float) -> None:
        stale = [k for k, t in self._tat.items() if t <= now]
        for k in stale or list(self._tat)[: len(self._tat) // 2]:
            del self._tat[k]


# KEYS[1] the bucket; ARGV: interval (µs), burst window (µs). Redis' own clock, so gateways with
# skewed clocks still agree. Returns 0 (allowed) or the wait in µs.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - window
if wait > 0 then return wait end
local new = tat + interval
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1)
return 0
"""


class RedisGcra:
    """GCRA in Redis: one EVALSHA per request. When Redis cannot be reached the limiter falls
    back to its in-process twin (each gateway then limits on its own) rather than fail requests,
    and leaves Redis alone for ``retry_after`` seconds, so a hung Redis does not add its timeout
    to every request.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "failwell:rate:",
        timeout: float = 0.05,
        retry_after: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_LUA)
        self._prefix = prefix
        self._clock = clock
        self._retry_after = retry_after
        self._down_until = 0.0
        self.fallback = Gcra(clock)
        self.failures = 0

    async def acquire(self, key: str, rate: float, burst: int) -> float:
        from redis.exceptions import RedisError

        if self._down_until and self._clock.now() < self._down_until:
            return self.fallback.check(key, rate, burst)
        interval = 1_000_000 / rate
        try:
            wait = await self._script(
                keys=[self._prefix + key], args=[int(interval), int(interval * (burst - 1))]
            )
        except (RedisError, OSError):
            self.failures += 1
            self._down_until = self._clock.now() + self._retry_after
            return self.fallback.check(key, rate, burst)
        self._down_until = 0.0
        return int(wait) / 1_000_000

    async def close(self) -> None:
        await self._redis.aclose()
