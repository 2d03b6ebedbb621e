"""Properties every autoscaling run must have, whatever drives it (load or a rate trend)."""

from __future__ import annotations

from itertools import pairwise

from failwell.config.managed import AutoscaleConfig
from failwell.supervisor.autoscale import Decision


def assert_cool_downs_hold(
    steps: list[tuple[float, int, Decision | None]], policy: AutoscaleConfig
) -> None:
    """No flapping: a scale-down waits ``down_cooldown`` after any change, a second scale-up
    ``up_cooldown`` after the first."""
    changes = [(t, d) for t, _, d in steps if d is not None]
    for (t0, d0), (t1, d1) in pairwise(changes):
        if d1.direction == "down":
            assert t1 - t0 >= policy.down_cooldown
        if d0.direction == "up" and d1.direction == "up":
            assert t1 - t0 >= policy.up_cooldown
