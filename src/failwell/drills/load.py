"""Open-loop load for drills: requests leave at a constant rate (or one that follows a profile,
requests/s by second) whatever the answers take, so a slow gateway shows up as latency and
timeouts, never as fewer requests. A request with ``"stream": true`` to a chat route is
read as a stream to its end, and each shot records how the stream ended (``STREAM_ENDS``):
complete with ``[DONE]``, an in-band error event, a clean close without either (a truncated
answer passed off as whole), or no end within the timeout (a hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Shot:
    sent: float  # seconds since the load started
    latency: float
    status: int  # 0: no HTTP answer (timeout, connection error)
    tier: str | None
    stream_end: str | None = None  # a streamed answer: how it ended (one of STREAM_ENDS)


COMPLETE, ERROR_EVENT, TRUNCATED, HANG = "complete", "error_event", "truncated", "hang"
STREAM_ENDS = (COMPLETE, ERROR_EVENT, TRUNCATED, HANG)


def stream_end(body: bytes) -> str:
    """How a whole SSE body ended: ``[DONE]``, an error event last, or neither."""
    events = [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    if not events:
        return TRUNCATED
    last = events[-1].strip()
    if last == b"data: [DONE]":
        return COMPLETE
    if last.startswith(b'data: {"error"') or b"event: error" in last:
        return ERROR_EVENT
    return TRUNCATED


class OpenLoop:
    def __init__(
        self,
        url: str,
        body: Callable[[int], Any],
        rate: float,
        timeout: float = 2.0,
        profile: Callable[[float], float] | None = None,
    ) -> None:
        self.url, self.body, self.rate, self.timeout = url, body, rate, timeout
        self.profile = profile  # the rate at a second since the start; None: ``rate`` throughout
        self.shots: list[Shot] = []
        self.started = 0.0  # monotonic
        self._stop = asyncio.Event()
        self._pending: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self.started

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Send until ``stop()``, then wait for the answers still out (bounded by the timeout)."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.started = time.monotonic()
            i, due = 0, self.started
            while not self._stop.is_set():
                wait = due - time.monotonic()
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), wait)
                        break
                    except TimeoutError:
                        pass
                task = asyncio.create_task(self._one(session, i, due))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                i += 1
                rate = self.rate if self.profile is None else self.profile(due - self.started)
                due += 1 / max(rate, 0.1)
            if self._pending:
                await asyncio.wait(self._pending, timeout=self.timeout + 1.0)

    async def _one(self, session: aiohttp.ClientSession, i: int, due: float) -> None:
        sent = time.monotonic()
        status, tier, end = 0, None, None
        try:
            async with session.post(self.url, json=self.body(i)) as resp:
                status, tier = resp.status, resp.headers.get("x-failwell-tier")
                if resp.content_type == "text/event-stream":
                    end = HANG  # until it ends within the timeout
                    end = await _read_stream(resp)
                else:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            pass
        # Latency counts from when the request was due, so a stalled sender cannot hide it.
        latency = time.monotonic() - min(due, sent)
        self.shots.append(Shot(due - self.started, latency, status, tier, end))


async def _read_stream(resp: aiohttp.ClientResponse) -> str:
    """Read a streamed answer to its end; how it ended (a connection cut mid-body is the
    same as a clean close: what the client got is all there is)."""
    parts: list[bytes] = []
    try:
        async for data in resp.content.iter_any():
            parts.append(data)
    except aiohttp.ClientPayloadError:
        pass
    return stream_end(b"".join(parts))
