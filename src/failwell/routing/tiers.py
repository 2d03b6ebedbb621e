"""The four tier kinds of a fallback chain: model, rules, cache, static.

Every tier has a name, a quality label, the time it asks earlier tiers to leave it
(``reserve``), what it can honour of a request (``supports``: a request that needs ``tools``
skips a tier without them, with the reason), a cheap ``ready()`` check (a model tier whose replicas are all open is skipped at
once) and ``answer(request, budget)`` which returns a ``TierAnswer`` or raises a failwell error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.models import TierKind
from failwell.contracts import Answer, ChunkStream, Request
from failwell.errors import TierFailed, TierFailure
from failwell.protocols.tensor import Tensors
from failwell.routing.pool import Pool, Replica
from failwell.store.cache import AnswerCache


class TierAnswer(msgspec.Struct):  # built in C: no Python __init__ frame per request
    outputs: Any
    backend: str
    model_version: str | None = None
    replica: str | None = None
    age: float | None = None  # seconds, for stale answers from the cache

    def labelled(
        self, tier: Tier, index: int, latency: float, failures: list[TierFailure]
    ) -> Answer:
        """The chain's answer: these outputs, labelled with the tier (``index``) that gave them."""
        return Answer(
            self.outputs,
            tier.name,
            tier.quality,
            self.backend,
            self.model_version,
            latency,
            index,
            self.replica,
            self.age,
            failures,
        )


# What a tier that is not a model can honour: it answers text, never a tool call.
LOCAL_SUPPORTS = frozenset({"vision"})
EVERYTHING = frozenset({"tools", "vision"})


class Tier(Protocol):
    name: str
    kind: TierKind
    quality: str
    reserve: float
    supports: frozenset[str]

    def ready(self) -> bool: ...

    async def answer(self, request: Request, budget: float) -> TierAnswer: ...


class ModelTier:
    kind = TierKind.MODEL

    def __init__(
        self,
        name: str,
        quality: str,
        reserve: float,
        pool: Pool,
        supports: frozenset[str] = EVERYTHING,
    ) -> None:
        self.name, self.quality, self.reserve, self.pool = name, quality, reserve, pool
        self.supports = supports

    def ready(self) -> bool:
        return self.pool.available()

    async def answer(self, request: Request, budget: float) -> TierAnswer:
        result, replica = await self.pool.call(request, budget)
        return TierAnswer(result.outputs, self.pool.backend, result.model_version, replica.label)

    @property
    def streams(self) -> bool:
        """Whether every replica's adapter can stream (an OpenAI-compatible backend)."""
        return all(hasattr(r.base, "stream") for r in self.pool.replicas)

    async def open_stream(
        self, request: Request, budget: float, first_token: float
    ) -> tuple[ChunkStream, Replica]:
        return await self.pool.open_stream(request, budget, first_token)


class RulesTier:
    """A plain function of the input; it runs inline, so it must be quick. On a tensor route it
    gets the batch as named numpy arrays and answers per row."""

    kind = TierKind.RULES
    supports = LOCAL_SUPPORTS

    def __init__(
        self,
        name: str,
        quality: str,
        reserve: float,
        func: Callable[[dict[str, Any]], Any],
        label: str,
    ) -> None:
        self.name, self.quality, self.reserve = name, quality, reserve
        self._func, self._label = func, label

    def ready(self) -> bool:
        return True

    async def answer(self, request: Request, budget: float) -> TierAnswer:
        inputs = request.inputs
        if type(inputs) is Tensors:
            inputs = inputs.arrays()
        try:
            outputs = self._func(inputs)
        except Exception as exc:  # a broken rule is a tier failure, whatever it raised
            raise TierFailed(
                f"rules {self._label} raised {type(exc).__name__}: {exc}", "rules_error"
            ) from None
        if outputs is None:
            raise TierFailed(f"rules {self._label} had no answer", "no_answer")
        return TierAnswer(outputs, f"rules:{self._label}")


class CacheTier:
    """The last good answer for this request's cache key; stale within the route's TTL."""

    kind = TierKind.CACHE
    supports = LOCAL_SUPPORTS

    def __init__(
        self,
        name: str,
        quality: str,
        reserve: float,
        cache: AnswerCache,
        key: Callable[[Request], str],
        ttl: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name, self.quality, self.reserve = name, quality, reserve
        self._cache, self._key, self._ttl, self._clock = cache, key, ttl, clock

    def ready(self) -> bool:
        return True

    async def answer(self, request: Request, budget: float) -> TierAnswer:
        key = self._key(request)
        entry = self._cache.get_memory(key)
        if entry is None and budget > 0:
            try:
                entry = await asyncio.wait_for(self._cache.get(key), budget)
            except TimeoutError:
                raise TierFailed("cache store did not answer in time", "cache_timeout") from None
        if entry is None:
            raise TierFailed("no cached answer for this key", "cache_miss")
        age = entry.age(self._clock.wall())
        if age > self._ttl:
            raise TierFailed(f"cached answer is {age:.0f}s old, over the TTL", "cache_expired")
        return TierAnswer(entry.outputs, "cache", entry.model_version, age=age)


class StaticTier:
    kind = TierKind.STATIC
    supports = LOCAL_SUPPORTS

    def __init__(self, name: str, quality: str, reserve: float, value: Any) -> None:
        self.name, self.quality, self.reserve, self._value = name, quality, reserve, value

    def ready(self) -> bool:
        return True

    async def answer(self, request: Request, budget: float) -> TierAnswer:
        return TierAnswer(self._value, "static")
