"""A fake clock and a fake backend adapter: any async function becomes a replica."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from failwell.contracts import Request, Result


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        """A sleep for code that takes one (a pool's backoff): moves the clock at once."""
        self.slept.append(seconds)
        self.t += seconds


Handler = Callable[[Request, float], Awaitable[Result]]


class FakeAdapter:
    """Calls ``handler(request, timeout)``; records every call."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[Request] = []
        self.closed = False

    async def call(self, request: Request, timeout: float) -> Result:
        self.calls.append(request)
        return await self.handler(request, timeout)

    async def close(self) -> None:
        self.closed = True
