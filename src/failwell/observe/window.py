"""Counts over sliding time windows: a ring of fixed-width buckets, each holding the running
totals (a row of counters) as they stood at the end of that bucket.

Recording is O(1): the caller bumps counters in ``row(now)``, the live running totals; a
new bucket starts as a copy of the previous totals (once per bucket, not per event). The
counts over any recent window are then one subtraction, ``totals(now) - totals(window ago)``,
so evaluating many long windows (days, at 30-second resolution) costs O(slots), not
O(buckets): the bucket at or before a time is found by bisecting the epochs held, which also
holds while the ring is mostly empty (a gateway younger than its longest window). Memory:
``span / width`` rows of ``slots`` ints.
"""

from __future__ import annotations

import bisect
import math


class Windowed:
    __slots__ = (
        "_current",
        "_epochs",
        "_floor",
        "_floor_epoch",
        "_held",
        "_rows",
        "n",
        "slots",
        "width",
    )

    def __init__(self, width: float, span: float, slots: int) -> None:
        if width <= 0 or span < width:
            raise ValueError("need 0 < width <= span")
        self.width = width
        self.slots = slots
        self.n = math.ceil(span / width) + 2
        self._rows: list[list[int]] = [[0] * slots for _ in range(self.n)]
        self._epochs = [-1] * self.n
        self._current = -1  # epoch of the newest row
        self._floor = [0] * slots  # totals at the end of the newest evicted bucket
        self._floor_epoch = -1
        self._held: list[int] = []  # the epochs in the ring, ascending

    @property
    def cumulative(self) -> list[int]:
        """Totals since the start."""
        return self._rows[self._current % self.n] if self._current >= 0 else self._floor

    def row(self, now: float) -> list[int]:
        """The live running totals; bump counters in it to record events at ``now``."""
        epoch = int(now / self.width)
        if epoch <= self._current:  # the same bucket (or a clock that stepped back)
            return self._rows[self._current % self.n]
        return self._advance(epoch)

    def _advance(self, epoch: int) -> list[int]:
        i = epoch % self.n
        evicted = self._epochs[i]
        if evicted >= 0:
            del self._held[bisect.bisect_left(self._held, evicted)]
            if evicted > self._floor_epoch:  # the newest evicted is the floor
                self._floor, self._floor_epoch = self._rows[i], evicted
        self._held.append(epoch)  # epochs only grow: the list stays sorted
        row = list(self.cumulative)
        self._rows[i] = row
        self._epochs[i] = epoch
        self._current = epoch
        return row

    def add(self, now: float, slot: int, amount: int = 1) -> None:
        self.row(now)[slot] += amount

    def _at(self, epoch: int) -> list[int]:
        """Totals at the end of ``epoch``: the newest bucket at or before it, else the floor
        (what is known of older times)."""
        if epoch >= self._current:
            return self.cumulative
        k = bisect.bisect_right(self._held, epoch) - 1
        if k >= 0 and self._held[k] > self._floor_epoch:
            return self._rows[self._held[k] % self.n]
        return self._floor if self._floor_epoch >= 0 else [0] * self.slots

    def totals(self, now: float, window: float) -> list[int]:
        """Counts per slot over the last ``window`` seconds (whole buckets, the current one
        included)."""
        newest = int(now / self.width)
        buckets = min(self.n - 2, max(1, math.ceil(window / self.width)))
        end, start = self._at(newest), self._at(newest - buckets)
        return [a - b for a, b in zip(end, start, strict=True)]

    def series(self, now: float, buckets: int) -> list[tuple[float, list[int]]]:
        """The last ``buckets`` buckets, oldest first, as (bucket start time, counts)."""
        newest = int(now / self.width)
        first = newest - min(buckets, self.n - 2) + 1
        before = self._at(first - 1)
        out = []
        for epoch in range(first, newest + 1):
            after = self._at(epoch)
            out.append((epoch * self.width, [a - b for a, b in zip(after, before, strict=True)]))
            before = after
        return out
