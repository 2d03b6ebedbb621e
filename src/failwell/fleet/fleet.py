"""One gateway's part of a fleet: the link to Redis and what is shared over it.

Built once by the composition root when the config has a ``fleet`` section; ``bind`` points
it at each topology the gateway serves (start-up and every reload)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.fleet import FleetConfig
from failwell.contracts import Service
from failwell.fleet.answers import SharedAnswerCache
from failwell.fleet.breakers import BreakerSync
from failwell.fleet.controls import ControlSync, FaultStore, FlagStore
from failwell.fleet.labels import FleetLabels
from failwell.fleet.lease import Lease
from failwell.fleet.link import FleetLink
from failwell.fleet.rollouts import RolloutSync
from failwell.fleet.rotation import Follow, RotationSync
from failwell.fleet.slo import FleetSlo
from failwell.observe import families_planes
from failwell.routing.pool import Pool
from failwell.store.cache import AnswerCache


class Fleet:
    def __init__(
        self, config: FleetConfig, registry: CollectorRegistry, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config = config
        self.link = FleetLink(config, registry, clock)
        self.lease = Lease(self.link, config.lease, registry)  # who runs the control loops
        self.rotation: RotationSync | None = None
        fallbacks = families_planes.FLEET_FALLBACKS.counter(registry)
        self.slo = FleetSlo(self.link, fallbacks.labels("slo"))  # every process's SLO counts
        self.labels = FleetLabels(self.link, fallbacks.labels("labels"))  # answers to label
        self.rollouts = RolloutSync(self.link, self.lease)  # records and counts of rollouts
        self.breakers = BreakerSync(self.link) if config.breakers else None
        self.controls: ControlSync | None = None
        self.answers = (
            SharedAnswerCache(self.link, config.cache_ttl, config.cache_refresh, registry)
            if config.cache
            else None
        )

    def share_cache(self, cache: AnswerCache) -> None:
        """Make ``cache`` (built once) write to and read from the fleet's cache too."""
        cache.shared = self.answers

    def share_controls(self, flags: FlagStore, faults: FaultStore) -> None:
        """Share the gateway's flags and fault book (built once, kept across reloads)."""
        if self.config.controls:
            self.controls = ControlSync(self.link, flags, faults)

    def share_rotation(self, follow: Follow) -> RotationSync:
        """Rotation verdicts of the leader's prober, applied here with ``follow``; the result's
        ``changed`` is told of every local change."""
        self.rotation = RotationSync(self.link, self.lease, follow)
        return self.rotation

    @property
    def services(self) -> list[Service]:
        return [self.link, self.lease, self.slo, self.rollouts]

    def readiness(self) -> dict[str, dict[str, Any]]:
        """Always ok: a gateway cut off from Redis answers on its own state, so it stays in
        rotation; ``up`` says whether it shares state right now."""
        link = self.link
        return {
            "fleet": {
                "ok": True,
                "up": link.up,
                "instance": link.me,
                "name": self.config.name,
                "leader": self.lease.leading,
            }
        }

    def bind(self, pools: Mapping[str, Pool]) -> None:
        if self.breakers is not None:
            self.breakers.bind(pools)
