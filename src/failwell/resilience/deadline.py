"""One deadline per request, and its split across the tier chain."""

from __future__ import annotations

from collections.abc import Sequence

from failwell.clock import SYSTEM_CLOCK, Clock


class Deadline:
    __slots__ = ("_clock", "expires_at")

    def __init__(self, seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.expires_at = clock.now() + seconds

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self._clock.now())

    def expired(self) -> bool:
        return self._clock.now() >= self.expires_at

    def __repr__(self) -> str:
        return f"<Deadline remaining={self.remaining() * 1000:.1f}ms>"


def reserves_after(reserves: Sequence[float]) -> list[float]:
    """For each tier, the time the tiers after it hold back: suffix sums of ``reserves``."""
    out = [0.0] * len(reserves)
    total = 0.0
    for i in range(len(reserves) - 1, -1, -1):
        out[i] = total
        total += reserves[i]
    return out


def tier_budget(remaining: float, held_back: float) -> float:
    """Time tier i may spend: what is left minus what later tiers hold back, never negative."""
    return max(0.0, remaining - held_back)
