"""Rotation shared by the fleet: the process that leads probes and runs canaries; every other
one applies its verdicts (``Replica.healthy``), so a replica the prober takes out of rotation is
out everywhere, with one probe stream per fleet.

    {failwell:NAME}:rotation    hash: "BACKEND/REPLICA" → "1" (in rotation) or "0"

The leader publishes each change and records it in the hash; a process reads the hash when it
(re)connects. While Redis is down a follower keeps the last verdicts it had (its breakers still
see live traffic)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from failwell.contracts import Leadership
from failwell.fleet.link import FleetLink

KIND = "rotation"
Follow = Callable[[str, str, bool], None]  # (backend, replica, healthy)


class RotationSync:
    def __init__(self, link: FleetLink, leadership: Leadership, follow: Follow) -> None:
        self.link, self.leadership, self.follow = link, leadership, follow
        self.hash = link.key("rotation")
        link.subscribe(KIND, self._apply)
        link.on_connect(self._reconcile)

    def changed(self, backend: str, replica: str, healthy: bool) -> None:
        """A change of rotation here: shared when this process is the one that probes."""
        if not self.leadership.leading:
            return
        field, value, key = f"{backend}/{replica}", "1" if healthy else "0", self.hash

        def state(pipe: Any) -> None:
            pipe.hset(key, field, value)

        self.link.publish(KIND, {"b": field, "h": healthy}, state)

    def _follow(self, field: str, healthy: bool) -> None:
        backend, _, replica = field.partition("/")
        self.follow(backend, replica, healthy)

    def _apply(self, message: dict[str, Any]) -> None:
        if not self.leadership.leading:
            self._follow(str(message["b"]), bool(message["h"]))

    async def _reconcile(self, redis: Any) -> None:
        if self.leadership.leading:
            return
        for field, value in (await redis.hgetall(self.hash)).items():
            self._follow(field.decode(), value == b"1")
