"""The scheduled canary drill: inside a running gateway, now and then, a small share of one
route's real traffic has one tier (the primary, by default) skipped for a while, to prove that
the tiers behind it still answer. Off by default; results go to Prometheus metrics.

    failwell_canary_drill_active{route}              1 while a drill window is open
    failwell_canary_drill_requests_total{route,outcome}  canary requests: answered / failed
    failwell_canary_drill_runs_total{route,result}   pass / fail / no_traffic
    failwell_canary_drill_last_answered_ratio{route} answered share in the last drill
    failwell_canary_drill_last_pass{route}           1 if the last drill passed, 0 if not
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from failwell.background import Background
from failwell.config.control import CanaryDrillConfig
from failwell.contracts import Request
from failwell.errors import TierFailed
from failwell.observe import families
from failwell.routing.tiers import Tier

if TYPE_CHECKING:
    from failwell.contracts import Exchange

_MAX_MEMBERS = 100_000  # request ids remembered within one window


class CanaryDrill:
    """A gateway service (start/stop), a tier gate (``skip``) and an exchange observer."""

    def __init__(
        self,
        cfg: CanaryDrillConfig,
        tier: str,
        registry: CollectorRegistry,
        seed: int | None = None,
    ) -> None:
        assert cfg.route is not None
        self.cfg, self.route, self.tier = cfg, cfg.route, tier
        self.active = False
        self._members: set[str] = set()
        self._answered = 0
        self._failed = 0
        self._rng = random.Random(seed)
        self._task = Background("canary-drill")
        self.m_active = families.CANARY_DRILL_ACTIVE.gauge(registry)
        self.m_requests = families.CANARY_DRILL_REQUESTS.counter(registry)
        self.m_runs = families.CANARY_DRILL_RUNS.counter(registry)
        self.m_ratio = families.CANARY_DRILL_LAST_ANSWERED.gauge(registry)
        self.m_pass = families.CANARY_DRILL_LAST_PASS.gauge(registry)
        self.m_active.labels(self.route).set(0)

    # -- the request path -------------------------------------------------------------------

    def skip(self, route: str, tier: Tier, request: Request) -> None:
        """Raise to skip ``tier`` for a request drawn into the canary share."""
        if not self.active or route != self.route or tier.name != self.tier:
            return
        if self._rng.random() >= self.cfg.share or len(self._members) >= _MAX_MEMBERS:
            return
        self._members.add(request.request_id)
        raise TierFailed(f"skipped by the canary drill on tier {self.tier!r}", "canary_drill")

    def observe(self, exchange: Exchange) -> None:
        if not self._members or exchange.request_id not in self._members:
            return
        self._members.discard(exchange.request_id)
        ok = exchange.status == 200 and exchange.answer is not None
        if ok:
            self._answered += 1
        else:
            self._failed += 1
        self.m_requests.labels(self.route, "answered" if ok else "failed").inc()

    # -- the schedule -----------------------------------------------------------------------

    def open_window(self) -> None:
        self._members.clear()
        self._answered = self._failed = 0
        self.active = True
        self.m_active.labels(self.route).set(1)

    def close_window(self) -> str:
        """End the drill window and record its result: pass, fail or no_traffic."""
        self.active = False
        self.m_active.labels(self.route).set(0)
        total = self._answered + self._failed
        answered, self._answered, self._failed = self._answered, 0, 0
        self._members.clear()
        if total == 0:
            result = "no_traffic"
        else:
            ratio = answered / total
            result = "pass" if ratio >= self.cfg.min_answered else "fail"
            self.m_ratio.labels(self.route).set(ratio)
            self.m_pass.labels(self.route).set(1 if result == "pass" else 0)
        self.m_runs.labels(self.route, result).inc()
        return result

    async def _loop(self) -> None:
        await asyncio.sleep(self.cfg.first_after)
        while True:
            self.open_window()
            try:
                await asyncio.sleep(self.cfg.duration)
            finally:
                self.close_window()
            await asyncio.sleep(self.cfg.every - self.cfg.duration)

    async def start(self) -> None:
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()
