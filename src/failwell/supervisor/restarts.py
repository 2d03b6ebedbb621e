"""A managed backend's failures and what they decide: the backoff before the next start
(``backoff * 2^(n-1)``, capped, over the failures within ``restart.window``) and the crash-loop
quarantine (``restart.crash_loop`` failures in the window: no more starts until ``release``).
A value driven by an injected clock, no I/O."""

from __future__ import annotations

from collections import deque

from failwell.clock import Clock
from failwell.config.managed import RestartConfig


class Restarts:
    def __init__(self, policy: RestartConfig, clock: Clock) -> None:
        self.policy, self.clock = policy, clock
        self.failed_at: deque[float] = deque()
        self.next_start = 0.0
        self.quarantined = False

    def failed(self) -> tuple[float, bool]:
        """Count a failure now: the backoff it sets, and whether it starts a quarantine."""
        now, p = self.clock.now(), self.policy
        self.failed_at.append(now)
        while self.failed_at and now - self.failed_at[0] > p.window:
            self.failed_at.popleft()
        n = len(self.failed_at)
        wait = min(p.max_backoff, p.backoff * 2 ** (n - 1))
        self.next_start = max(self.next_start, now + wait)
        starts = n >= p.crash_loop and not self.quarantined
        self.quarantined = self.quarantined or starts
        return wait, starts

    def may_start(self) -> bool:
        return not self.quarantined and self.clock.now() >= self.next_start

    def release(self) -> bool:
        """Forget the failures and lift a quarantine; whether there was one."""
        was, self.quarantined = self.quarantined, False
        self.failed_at.clear()
        self.next_start = 0.0
        return was

    def status(self) -> dict[str, object]:
        return {
            "quarantined": self.quarantined,
            "failures_in_window": len(self.failed_at),
            "next_start_in_s": round(max(0.0, self.next_start - self.clock.now()), 3),
        }
