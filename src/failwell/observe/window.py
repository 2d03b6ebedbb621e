"""Counts over sliding time windows: a ring of fixed-width buckets, each a row of counters.

``add`` is O(1) (an index and an increment; a stale bucket is zeroed when time reaches it);
``totals`` sums the buckets of the last ``window`` seconds and runs off the request path
(SLO evaluation, the dashboard feed). Memory: ``span / width`` rows of ``slots`` ints.
"""

from __future__ import annotations

import math


class Windowed:
    __slots__ = ("_epochs", "_rows", "n", "slots", "width")

    def __init__(self, width: float, span: float, slots: int) -> None:
        if width <= 0 or span < width:
            raise ValueError("need 0 < width <= span")
        self.width = width
        self.slots = slots
        self.n = math.ceil(span / width) + 1
        self._rows = [[0] * slots for _ in range(self.n)]
        self._epochs = [-1] * self.n

    def row(self, now: float) -> list[int]:
        """The counters of the bucket holding ``now``, for callers that bump several."""
        epoch = int(now / self.width)
        i = epoch % self.n
        row = self._rows[i]
        if self._epochs[i] != epoch:
            self._epochs[i] = epoch
            for j in range(self.slots):
                row[j] = 0
        return row

    def add(self, now: float, slot: int, amount: int = 1) -> None:
        self.row(now)[slot] += amount

    def totals(self, now: float, window: float) -> list[int]:
        """Counts per slot over the last ``window`` seconds (whole buckets, the current one
        included)."""
        newest = int(now / self.width)
        oldest = newest - min(self.n - 1, max(1, math.ceil(window / self.width))) + 1
        out = [0] * self.slots
        for i, epoch in enumerate(self._epochs):
            if oldest <= epoch <= newest:
                for j, v in enumerate(self._rows[i]):
                    out[j] += v
        return out

    def series(self, now: float, buckets: int) -> list[tuple[float, list[int]]]:
        """The last ``buckets`` buckets, oldest first, as (bucket start time, counts)."""
        newest = int(now / self.width)
        out = []
        for epoch in range(newest - min(buckets, self.n) + 1, newest + 1):
            i = epoch % self.n
            row = self._rows[i] if self._epochs[i] == epoch else [0] * self.slots
            out.append((epoch * self.width, list(row)))
        return out
