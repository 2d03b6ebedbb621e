"""The tier chain: try each tier in order within one deadline, and say who answered.

Tier i may spend what is left of the deadline minus what the tiers after it hold back
(their ``reserve``), so the last resort always has time to answer. A tier that cannot answer
now (every replica open) is skipped at once, and so is a tier that cannot honour the request
(a static text for a request with tools), with the reason. A tier-1 answer is stored for the
cache tier. A tensor route with per-row fallback hands a batch that tier 1 failed to ``rows``
(``routing/rows.py``), which answers each row from the first later tier that can.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, cast

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.models import TierKind
from failwell.contracts import Answer, ChunkStream, Request
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
from failwell.protocols.chat import completion, is_completion
from failwell.resilience.deadline import reserves_after, tier_budget
from failwell.routing.pool import Replica
from failwell.routing.streams import LocalStream, OpenStream, include_usage
from failwell.routing.tiers import ModelTier, Tier, TierAnswer

if TYPE_CHECKING:
    from failwell.routing.rows import RowFallback

StoreAnswer = Callable[[Request, Any, str | None], None]
# Raises a FailwellError to skip a tier for this request (a flag switched it off, a drill).
TierGate = Callable[[Tier, Request], None]
# Shapes a tier's outputs into the route's form (a tensor route: Tensors matching the batch);
# raises a FailwellError when they do not fit, and the next tier answers.
Conform = Callable[[Request, Any, TierKind], Any]


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
        conform: Conform | None = None,
        rows: RowFallback | None = None,
    ) -> None:
        self.route = route
        self.tiers = list(tiers)
        self._held_back = reserves_after([t.reserve for t in self.tiers])
        self.metrics = metrics
        self._store = store
        self.clock = clock
        self.conform = conform
        self.rows = rows  # per-row fallback once tier 1 fails a batch (fallback: rows)
        self.in_flight = metrics.route_in_flight(route)
        self.gate: TierGate | None = None  # set by failwell.control

    def run(self, request: Request, started: float) -> Coroutine[Any, Any, Answer]:
        """The answer (``_run`` itself: a wrapper coroutine would be one more frame per
        request; with no first-token wait it gives an ``Answer``)."""
        return cast("Coroutine[Any, Any, Answer]", self._run(request, started, None))

    async def open_stream(self, request: Request, started: float, first_token: float) -> OpenStream:
        """The first tier whose stream's first chunk comes within ``first_token`` seconds of an
        attempt (a model tier), or whose whole answer becomes a stream (any other tier)."""
        opened = await self._run(request, started, first_token)
        assert isinstance(opened, OpenStream)
        return opened

    async def resume_stream(self, request: Request, after: int, first_token: float) -> OpenStream:
        """A stream that takes over from tier ``after``'s, which failed mid-way: the first model
        tier after it whose stream's first chunk comes within ``first_token`` seconds (rules,
        cache and static cannot continue a partial answer)."""
        opened = await self._run(request, self.clock.now(), first_token, after + 1)
        assert isinstance(opened, OpenStream)
        return opened

    def budget(self, index: int, request: Request) -> float:
        """What is left of ``request``'s deadline less what the tiers after ``index`` hold back."""
        return tier_budget(request.deadline.remaining(), self._held_back[index])

    def check(self, tier: Tier, index: int, request: Request) -> float:
        """The time tier ``index`` may spend on ``request``; raises a FailwellError when the
        tier is to be skipped (gated off, cannot honour it, no replica, no time left)."""
        budget = tier_budget(request.deadline.remaining(), self._held_back[index])  # inline: hot
        if self.gate is not None:
            self.gate(tier, request)
        if request.needs and not request.needs <= tier.supports:
            raise TierFailed(_unsupported(tier, request.needs), "unsupported")
        if not tier.ready():
            raise NoHealthyReplica("skipped: no replica available")
        if budget <= 0 and tier.kind is TierKind.MODEL:
            raise DeadlineExceeded("no time left for this tier")
        return budget

    async def _run(
        self, request: Request, started: float, first_token: float | None, resume_at: int = 0
    ) -> Answer | OpenStream:
        metrics, route = self.metrics, self.route
        failures: list[TierFailure] = []
        for index, tier in enumerate(self.tiers):
            if index < resume_at:
                continue
            stream: ChunkStream | None = None
            replica: Replica | None = None
            try:
                budget = self.check(tier, index, request)
                if first_token is not None and isinstance(tier, ModelTier) and tier.streams:
                    stream, replica = await tier.open_stream(request, budget, first_token)
                    got = TierAnswer(None, tier.pool.backend, None, replica.label)
                elif resume_at:
                    raise TierFailed(
                        "skipped: this tier cannot continue a partial answer", "cannot_continue"
                    )
                else:
                    got = await tier.answer(request, budget)
                    if self.conform is not None:
                        got.outputs = self.conform(request, got.outputs, tier.kind)
            except UpstreamRefused:
                metrics.refused(route, "upstream_refused")
                raise  # the caller's request, refused upstream: never routed around
            except FailwellError as exc:
                failures.append(TierFailure(tier.name, exc.kind, exc.message))
                metrics.fell_back(route, tier.name, exc.kind)
                if index == 0 and self.rows is not None and first_token is None:
                    split = self.rows.split(request)
                    if split is not None:
                        return await self.rows.run(self, request, split, started, failures)
                continue
            latency = self.clock.now() - started
            if not resume_at:  # a resumed stream's request was counted when it began
                metrics.answered(route, tier.name, "ok", latency)
            answer = got.labelled(tier, index, latency, failures)
            store = self._store if index == 0 else None
            if first_token is None:
                if store is not None:
                    store(request, got.outputs, got.model_version)
                return answer
            if stream is None:  # a whole answer, told as a stream
                stream = LocalStream(as_completion(got, request), include_usage(request))
            answer.tiers = [tier.name]
            return OpenStream(answer, stream, request, replica, store, metrics=metrics, index=index)
        if not resume_at:
            metrics.refused(route, "all_tiers_failed")
        raise AllTiersFailed(route, failures)


def as_completion(got: TierAnswer, request: Request) -> dict[str, Any]:
    """A tier's answer as a chat completion (an upstream's or a cached one is one already)."""
    if is_completion(got.outputs):
        return cast(dict[str, Any], got.outputs)
    return completion(request.request_id, int(time.time()), got.backend, got.outputs)
