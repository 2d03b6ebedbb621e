"""The request rate expected a few seconds ahead: a straight line fitted (least squares) to the
rates measured over the last ``window``, read ``horizon`` past the newest one. A value with no
I/O, fed by the autoscaler with its injected clock's times.

A line rather than Holt's smoothing: it has no smoothing constants to tune, it is exact for a
steady ramp (the case it is for: capacity must arrive before a rising load breaks the SLO),
and a single outlier in a window of ten or more rates moves it little. It is only trusted once
the rates cover half the window, so a start or a reload does not extrapolate from two points.
"""

from __future__ import annotations

from collections import deque

from failwell.config.managed import TrendConfig


class RateTrend:
    def __init__(self, policy: TrendConfig) -> None:
        self.policy = policy
        self._rates: deque[tuple[float, float]] = deque()

    def add(self, at: float, rate: float) -> None:
        """The rate (requests/s) measured over the interval that ended at ``at``."""
        self._rates.append((at, rate))
        while self._rates and at - self._rates[0][0] > self.policy.window:
            self._rates.popleft()

    def forecast(self) -> float | None:
        """The rate expected ``horizon`` after the newest measurement; None while the rates
        cover less than half the window or are below ``min_rate``."""
        if len(self._rates) < 3:
            return None
        newest, rate = self._rates[-1]
        if newest - self._rates[0][0] < self.policy.window / 2 or rate < self.policy.min_rate:
            return None
        n = len(self._rates)
        mean_t = sum(t for t, _ in self._rates) / n
        mean_r = sum(r for _, r in self._rates) / n
        spread = sum((t - mean_t) ** 2 for t, _ in self._rates)
        slope = sum((t - mean_t) * (r - mean_r) for t, r in self._rates) / spread
        return max(0.0, mean_r + slope * (newest + self.policy.horizon - mean_t))
