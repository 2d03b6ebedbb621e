"""Retry policy: exponential backoff with full jitter, bounded by the request's deadline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 2
    backoff: float = 0.005
    max_backoff: float = 0.040
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, attempt: int) -> float:
        """Longest wait before attempt number ``attempt`` (2 = the first retry)."""
        if attempt < 2:
            return 0.0
        return min(self.max_backoff, self.backoff * 2.0 ** (attempt - 2))

    def wait(self, attempt: int) -> float:
        """Full jitter: uniform in [0, ceiling]."""
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def may_retry(self, attempt: int, wait: float, remaining: float, attempt_time: float) -> bool:
        """Start attempt ``attempt`` only if it exists and the deadline covers wait + one attempt."""
        return attempt <= self.attempts and remaining >= wait + attempt_time
