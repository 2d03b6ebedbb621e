"""A small load generator for tests and drills: N concurrent clients for a bounded time, each
answer recorded with its time, status, tier and latency."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Record:
    sent: float  # monotonic seconds
    latency: float
    status: int  # 0 when the request failed without an HTTP answer
    tier: str | None
    error: str | None = None
    request_id: str | None = None  # the gateway's x-request-id of an answer


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)

    def since(self, t: float) -> LoadResult:
        return LoadResult([r for r in self.records if r.sent >= t])

    def between(self, start: float, end: float) -> LoadResult:
        return LoadResult([r for r in self.records if start <= r.sent < end])

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status != 200]

    def tiers(self) -> Counter[str | None]:
        return Counter(r.tier for r in self.records if r.status == 200)

    def share(self, tier: str) -> float:
        ok = [r for r in self.records if r.status == 200]
        return sum(r.tier == tier for r in ok) / len(ok) if ok else 0.0

    def __len__(self) -> int:
        return len(self.records)


async def run_load(
    url: str,
    body: Callable[[int], Any],
    *,
    concurrency: int = 8,
    duration: float = 3.0,
    timeout: float = 5.0,
    stop: asyncio.Event | None = None,
    sink: LoadResult | None = None,
) -> LoadResult:
    """POST ``body(i)`` (JSON) to ``url`` from ``concurrency`` clients until ``duration`` seconds
    pass or ``stop`` is set. Records accumulate into ``sink`` as they arrive."""
    result = sink if sink is not None else LoadResult()
    ends = time.monotonic() + duration
    counter = iter(range(10**9))
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < ends and not (stop and stop.is_set()):
            i = next(counter)
            sent = time.monotonic()
            try:
                async with session.post(url, json=body(i)) as resp:
                    await resp.read()
                    tier = resp.headers.get("x-failwell-tier")
                    rid = resp.headers.get("x-request-id")
                    took = time.monotonic() - sent
                    result.records.append(Record(sent, took, resp.status, tier, None, rid))
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.records.append(
                    Record(sent, time.monotonic() - sent, 0, None, type(exc).__name__)
                )

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return result
