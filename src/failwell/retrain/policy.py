"""When may a signal start a training job? A small value on an injected clock: one job at a
time per route, none within ``cooldown`` of the last start, at most ``max_per_day`` starts in
any 24 hours; a scheduled job is due ``schedule`` after the last start. A flapping signal asks
often and is refused with the reason; it never starts a storm of jobs."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Decision:
    start: bool
    reason: str
    outcome: str = "started"  # or why not: running, cooldown, cap


@dataclass
class TriggerPolicy:
    cooldown: float
    max_per_day: int
    schedule: float | None = None
    created: float = 0.0  # the schedule counts from here until a first job starts
    running: bool = False
    starts: deque[float] = field(default_factory=deque)

    def due(self, now: float) -> bool:
        """The schedule asks for a job now."""
        if self.schedule is None:
            return False
        last = self.starts[-1] if self.starts else self.created
        return now - last >= self.schedule

    def ask(self, now: float) -> Decision:
        """May a job start now? (Does not start it: ``started`` does.)"""
        while self.starts and now - self.starts[0] >= DAY:
            self.starts.popleft()
        if self.running:
            return Decision(False, "a job for this route is running", "running")
        if self.starts and now - self.starts[-1] < self.cooldown:
            left = self.cooldown - (now - self.starts[-1])
            reason = f"cooling down ({left:.0f}s left of {self.cooldown:.0f}s)"
            return Decision(False, reason, "cooldown")
        if len(self.starts) >= self.max_per_day:
            reason = f"{self.max_per_day} jobs in the last 24 hours (the cap)"
            return Decision(False, reason, "cap")
        return Decision(True, "allowed")

    def started(self, now: float) -> None:
        self.starts.append(now)
        self.running = True

    def ended(self) -> None:
        self.running = False
