"""The tier chain: try each tier in order within one deadline, and say who answered.

Tier i may spend what is left of the deadline minus what the tiers after it hold back
(their ``reserve``), so the last resort always has time to answer. A tier that cannot answer
now (every replica open) is skipped at once, and so is a tier that cannot honour the request
(a static text for a request with tools), with the reason. A tier-1 answer is stored for the
cache tier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.models import TierKind
from failwell.contracts import Answer, Request
from failwell.errors import (
    AllTiersFailed,
    DeadlineExceeded,
    FailwellError,
    NoHealthyReplica,
    TierFailed,
    TierFailure,
    UpstreamRefused,
)
from failwell.observe.metrics import Metrics
from failwell.resilience.deadline import reserves_after, tier_budget
from failwell.routing.tiers import Tier

StoreAnswer = Callable[[Request, Any, str | None], None]
# Raises a FailwellError to skip a tier for this request (a flag switched it off, a drill).
TierGate = Callable[[Tier, Request], None]


def _unsupported(tier: Tier, needs: frozenset[str]) -> str:
    missing = ", ".join(sorted(needs - tier.supports))
    return f"skipped: tier {tier.name!r} cannot honour a request with {missing}"


class TierChain:
    def __init__(
        self,
        route: str,
        tiers: Sequence[Tier],
        metrics: Metrics,
        store: StoreAnswer | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.route = route
        self.tiers = list(tiers)
        self._held_back = reserves_after([t.reserve for t in self.tiers])
        self._metrics = metrics
        self._store = store
        self.clock = clock
        self.in_flight = metrics.route_in_flight(route)
        self.gate: TierGate | None = None  # set by failwell.control

    async def run(self, request: Request, started: float) -> Answer:
        metrics, route = self._metrics, self.route
        failures: list[TierFailure] = []
        deadline = request.deadline
        for index, tier in enumerate(self.tiers):
            budget = tier_budget(deadline.remaining(), self._held_back[index])
            try:
                if self.gate is not None:
                    self.gate(tier, request)
                if request.needs and not request.needs <= tier.supports:
                    raise TierFailed(_unsupported(tier, request.needs), "unsupported")
                if not tier.ready():
                    raise NoHealthyReplica("skipped: no replica available")
                if budget <= 0 and tier.kind is TierKind.MODEL:
                    raise DeadlineExceeded("no time left for this tier")
                got = await tier.answer(request, budget)
            except UpstreamRefused:
                metrics.refused(route, "upstream_refused")
                raise  # the caller's request, refused upstream: never routed around
            except FailwellError as exc:
                failures.append(TierFailure(tier.name, exc.kind, exc.message))
                metrics.fell_back(route, tier.name, exc.kind)
                continue
            latency = self.clock.now() - started
            metrics.answered(route, tier.name, "ok", latency)
            if index == 0 and self._store is not None:
                self._store(request, got.outputs, got.model_version)
            return Answer(
                got.outputs,
                tier.name,
                tier.quality,
                got.backend,
                got.model_version,
                latency,
                index,
                got.replica,
                got.age,
                failures,
            )
        metrics.refused(route, "all_tiers_failed")
        raise AllTiersFailed(route, failures)
