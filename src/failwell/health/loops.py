"""One looping task per entry (a replica to probe, a route's canary), restarted on a new set of
entries: ``start`` begins them, ``replace`` swaps the set at once (the old tasks are cancelled,
not awaited: a reload does not wait for a probe in flight), ``stop`` ends and awaits them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

Entry = TypeVar("Entry")


class Loops(Generic[Entry]):
    def __init__(
        self, run: Callable[[Entry], Coroutine[Any, Any, None]], name: Callable[[Entry], str]
    ) -> None:
        self._run, self._name = run, name
        self.entries: list[Entry] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    def replace(self, entries: Sequence[Entry]) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self.entries = list(entries)
        if self._running:
            self._spawn()

    def start(self) -> None:
        self._running = True
        self._spawn()

    def _spawn(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(entry), name=self._name(entry)) for entry in self.entries
        ]

    async def stop(self) -> None:
        self._running = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
