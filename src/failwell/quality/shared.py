"""What live quality needs of a fleet, so a label joins its answer whichever process served it
(``fleet/labels.py`` keeps it in Redis; the root hands it to ``QualityWatch.share``).

Every call that reads Redis answers None when it cannot (Redis down, or a command failed): the
caller then joins labels to this process's own answers only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from failwell.config.drift import QualityConfig
from failwell.quality.score import Pair

Joined = tuple[str, float, Pair]  # (request id, time answered, its pair)
Found = tuple[dict[str, tuple[Any, float]], set[str]]  # id → (prediction, time); ids labelled


class SharedLabels(Protocol):
    def remember(
        self, route: str, config: QualityConfig, request_id: str, prediction: Any, at: float
    ) -> None:
        """Queue an answer for the fleet (on the request path: never waits for Redis)."""

    async def find(self, route: str, ids: Sequence[str]) -> Found | None:
        """The answers of ``ids`` the fleet remembers, and which of them are labelled; waits
        a bounded time for answers still on their way to Redis."""

    async def claim(
        self, route: str, config: QualityConfig, joined: Sequence[Joined]
    ) -> tuple[str | None, list[Pair]] | None:
        """Label every one of ``joined`` once fleet-wide, all or none: (the id another label
        took first, or None; the fleet's window of labelled pairs after)."""

    def defer(self, route: str, config: QualityConfig, joined: Sequence[Joined]) -> None:
        """Labels joined here while Redis was unreachable: marked labelled and added to the
        fleet's window once it is back (a pair whose answer another process labelled
        meanwhile is not added twice)."""

    async def window(self, route: str, config: QualityConfig) -> list[Pair] | None:
        """The fleet's window of labelled pairs, newest first."""
