"""The autoscaling decision for one managed backend: a small value driven by an injected clock,
no I/O, so it is tested by hand and with hypothesis.

Each ``decide`` takes what the supervisor measured over the last interval (mean requests in
flight over the serving replicas, the backend's tier-1 latency p99) and recommends a count:

- queue depth: ``ceil(in_flight / target_in_flight)``, or no change while the load per
  replica stays within ``1 ± tolerance`` of the target;
- latency: when p99 is above ``target_p99 * (1 + tolerance)``, ``ceil(current * ratio)`` with
  the ratio capped at 2 (latency is not proportional to replicas; it only ever votes up);

- trend (opt-in, ``trend.enabled``): when the request rate forecast ``trend.horizon`` ahead
  (``trend.RateTrend``) is above the rate now by more than the tolerance, the queue depth that
  rate would bring by Little's law, ``ceil(in_flight * forecast / rate / target_in_flight)``
  (it only ever votes up: a falling forecast never removes capacity early);

the largest wins, clamped to ``[low, high]``. Then, like Kubernetes' HPA behaviour:
stabilisation (scale up to the *lowest* recommendation of ``up_window``, down to the *highest*
of ``down_window``, so a spike or a dip that does not last moves nothing), cool-downs
(``up_cooldown`` between scale-ups, ``down_cooldown`` after any change before a scale-down)
and step limits. A count outside ``[low, high]`` (after a reload) is brought inside at once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from failwell.clock import Clock
from failwell.config.managed import AutoscaleConfig
from failwell.supervisor.trend import RateTrend


@dataclass(frozen=True, slots=True)
class Decision:
    at: float  # clock seconds
    current: int
    desired: int
    reason: str
    in_flight: float
    p99: float | None
    rate: float | None = None  # requests/s over the last interval
    forecast: float | None = None  # requests/s expected trend.horizon ahead

    @property
    def direction(self) -> str:
        return "up" if self.desired > self.current else "down"

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.current,
            "to": self.desired,
            "direction": self.direction,
            "reason": self.reason,
            "in_flight": round(self.in_flight, 3),
            "p99_ms": None if self.p99 is None else round(self.p99 * 1000, 3),
            "rate": None if self.rate is None else round(self.rate, 3),
            "forecast": None if self.forecast is None else round(self.forecast, 3),
        }


class Autoscaler:
    def __init__(self, policy: AutoscaleConfig, low: int, high: int, clock: Clock) -> None:
        self.policy, self.low, self.high, self.clock = policy, low, high, clock
        self._history: deque[tuple[float, int]] = deque()
        self._since: float | None = None  # the first measurement: windows need covering
        self._last_up = -math.inf
        self._last_change = -math.inf
        self.trend = RateTrend(policy.trend)

    def recommend(
        self,
        current: int,
        in_flight: float,
        p99: float | None,
        rate: float | None = None,
        forecast: float | None = None,
    ) -> tuple[int, str]:
        """The count this one measurement asks for, and why."""
        p = self.policy
        per = in_flight / max(current, 1)
        if abs(per / p.target_in_flight - 1) <= p.tolerance:
            want, why = current, f"{per:.2f} in flight per replica, on target {p.target_in_flight}"
        else:
            want = math.ceil(in_flight / p.target_in_flight)
            why = f"{per:.2f} in flight per replica against a target of {p.target_in_flight}"
        if p.target_p99 is not None and p99 is not None and p99 > p.target_p99 * (1 + p.tolerance):
            by_latency = math.ceil(current * min(p99 / p.target_p99, 2.0))
            if by_latency > want:
                want = by_latency
                why = (
                    f"tier-1 p99 {p99 * 1000:.1f} ms above the target {p.target_p99 * 1000:.1f} ms"
                )
        if rate and forecast is not None and forecast > rate * (1 + p.tolerance):
            expected = in_flight * forecast / rate
            by_trend = math.ceil(expected / p.target_in_flight)
            if by_trend > want:
                want = by_trend
                why = (
                    f"request rate {rate:.1f}/s heading for {forecast:.1f}/s in "
                    f"{format(p.trend.horizon, 'g')}s: {expected:.2f} in flight expected"
                )
        return min(max(want, self.low), self.high), why

    def decide(
        self, current: int, in_flight: float, p99: float | None, rate: float | None = None
    ) -> Decision | None:
        """A change of the desired count, or None to keep ``current``. ``rate`` (requests/s
        over the interval) feeds the trend when it is on."""
        p, now = self.policy, self.clock.now()
        if self._since is None:
            self._since = now
        covered = now - self._since
        forecast = None
        if p.trend.enabled and rate is not None:
            self.trend.add(now, rate)
            forecast = self.trend.forecast()
        raw, why = self.recommend(current, in_flight, p99, rate, forecast)
        self._history.append((now, raw))
        keep = max(p.up_window, p.down_window)
        while self._history and now - self._history[0][0] > keep:
            self._history.popleft()
        up = min(r for t, r in self._history if now - t <= p.up_window)
        down = max(r for t, r in self._history if now - t <= p.down_window)
        desired = current
        if current < self.low or current > self.high:
            desired = min(max(current, self.low), self.high)
            why = f"outside min {self.low} / max {self.high}"
        elif up > current and covered >= p.up_window and now - self._last_up >= p.up_cooldown:
            desired = min(up, current + p.max_step_up)
            why += f"; sustained {format(p.up_window, 'g')}s"
        elif (
            down < current
            and covered >= p.down_window
            and now - self._last_change >= p.down_cooldown
        ):
            desired = max(down, current - p.max_step_down)
            why += f"; sustained {format(p.down_window, 'g')}s"
        if desired == current:
            return None
        if desired > current:
            self._last_up = now
        self._last_change = now
        return Decision(now, current, desired, why, in_flight, p99, rate, forecast)
