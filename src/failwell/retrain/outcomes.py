"""The outcomes of retraining canaries, each recorded once in the fleet by whichever process's
loop learns it.

A retraining canary is a rollout whose record carries the loop's ``origin`` (``{"loop":
"retrain", "token": ..., "cycle": ..., "signal": ...}``). When the lease moves mid-canary,
the next holder's rollout controller adopts the rollout and ends it, and the cycle that
started it is gone: the next holder's loop reads the fleet's records every ``retrain.every``
(``scan``), shows the route's canary as adopted while it runs, and records its decision when
it ends. The loop whose own cycle sees the end records it too. Which of them does is settled
by a claim on the token in the fleet's store (``FleetCanaries.claim``, SET NX): one only. A
claim that cannot be made (Redis unreachable) leaves the outcome to a later scan.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

LOOP = "retrain"  # origin["loop"] of the rollouts this loop starts
RUNNING = "running"


@dataclass(frozen=True)
class FleetCanary:
    """A retraining canary as the fleet's rollout record tells it."""

    rollout: str  # the rollout's id
    route: str
    candidate: str  # NAME@VERSION
    state: str  # running, promoted, rolled_back, aborted
    reason: str
    origin: dict[str, Any]  # what the loop that started it wrote

    @property
    def token(self) -> str:
        return str(self.origin.get("token", self.rollout))


class FleetCanaries(Protocol):
    """The retraining canaries in the fleet's rollout records (the composition root's)."""

    async def read(self) -> list[FleetCanary] | None:
        """Every record whose origin is this loop's (None: the store is unreachable)."""
        ...

    async def claim(self, token: str) -> bool | None:
        """True for the one process that records the outcome of ``token``'s canary; False
        for every other; None while the store is unreachable."""
        ...


@dataclass(frozen=True)
class Learned:
    """What a scan tells the loop to record."""

    kind: str  # "adopted": running, driven by no cycle here; "ended"
    canary: FleetCanary
    record: bool = True  # False: ended, and another process has recorded the outcome


@dataclass
class Outcomes:
    """Which canaries this process's cycles drive and which it has seen end."""

    fleet: FleetCanaries | None = None
    driving: set[str] = field(default_factory=set)  # tokens of this process's running cycles
    followed: dict[str, FleetCanary] = field(default_factory=dict)  # route → shown as adopted
    _seen: set[str] = field(default_factory=set)  # tokens whose end this process has settled

    async def claim(self, token: str) -> bool:
        """For a cycle of this process at its canary's end: record the outcome now? (Alone:
        always. In a fleet: when this process's claim is the first; unreachable: no, a scan
        claims it later.)"""
        if self.fleet is None:
            return True
        taken = await self.fleet.claim(token)
        if taken is not None:
            self._seen.add(token)
        return bool(taken)

    async def scan(self, routes: Collection[str]) -> list[Learned]:
        """Read the fleet's retraining canaries of ``routes``: each running one no cycle here
        drives, once per route and canary; each ended one whose outcome this process is the
        first to claim, or that it showed as adopted (and one whose record is gone)."""
        if self.fleet is None:
            return []
        found = await self.fleet.read()
        if found is None:
            return []
        out = []
        for canary in found:
            token = canary.token
            if canary.route not in routes or token in self.driving or token in self._seen:
                continue
            shown = self.followed.get(canary.route)
            if canary.state == RUNNING:
                if shown is None or shown.token != token:
                    self.followed[canary.route] = canary
                    out.append(Learned("adopted", canary))
                continue
            taken = await self.fleet.claim(token)
            if taken is None:
                continue  # the next scan tries again
            self._seen.add(token)
            followed = shown is not None and shown.token == token
            if followed:
                del self.followed[canary.route]
            if taken or followed:
                out.append(Learned("ended", canary, record=taken))
        kept = {c.token for c in found}
        for route, shown in list(self.followed.items()):
            if shown.token not in kept:  # its record is gone: no outcome to learn, not shown
                del self.followed[route]
                out.append(Learned("ended", shown, record=False))
        self._seen &= kept | self.driving  # the records still kept
        return out
