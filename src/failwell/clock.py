"""The one real clock. Policies take a Clock so tests can drive time by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...


class SystemClock:
    __slots__ = ()

    # The C functions themselves: a request reads the clock at each of its steps, and a
    # Python method around each read would be one more frame every time.
    now = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


SYSTEM_CLOCK = SystemClock()
