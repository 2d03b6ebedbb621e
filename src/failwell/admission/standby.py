"""Admission that follows failover: when a pool's first priority group is unavailable and a
standby group serves, the route admits only the standby's share of the declared capacity
(``replicas[i].capacity``), so a small standby is not flattened by the primary's traffic."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from failwell.routing.pool import Pool


def capacity_scale(pool: Pool, capacities: Mapping[str, float]) -> Callable[[], float]:
    """A function giving (capacity of the group serving now) / (capacity of group 0)."""
    groups = [(group, sum(capacities.get(r.label, 1.0) for r in group)) for group in pool.groups]
    if len(groups) < 2:
        return lambda: 1.0
    full = groups[0][1]

    def scale() -> float:
        for group, capacity in groups:
            for replica in group:
                if replica.available():
                    return min(1.0, capacity / full)
        return 1.0  # nothing upstream is available: the cheap local tiers answer

    return scale
