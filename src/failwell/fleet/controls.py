"""Feature flags and injected faults shared by the fleet: an operator sets one on any gateway
and every gateway obeys it.

    {failwell:NAME}:flags    hash: target → {"on": bool, "at": wall clock of the change}
    {failwell:NAME}:faults   hash: fault id → the fault's record (spec, started, expires);
                             the key expires with the last fault

Every gateway keeps its own flags and fault book and reads only those on a request; a change
made here is published and recorded in the hash, a change published elsewhere is applied here
without being published again. The flags file of each gateway follows (a restarted gateway
comes back with the fleet's flags even while Redis is down).

On (re)connect, flags: the newer change wins (a flag switched here while Redis was down is
pushed to the fleet; one switched elsewhere meanwhile is applied here); flags read from the file
at start-up never override the fleet's. Faults: the hash's faults are adopted; a fault made here
that the hash lacks is pushed (Redis came back empty); one adopted from another gateway that
the hash no longer holds is dropped (it was cleared meanwhile).

The parts are named by what this needs of them (``FlagStore``, ``FaultStore``), as the faults
package is a sibling of this one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from failwell.fleet.link import FleetLink
from failwell.observe.logging import log

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class FlagStore(Protocol):
    def set(self, target: str, on: bool) -> bool: ...

    def enabled(self, target: str) -> bool: ...

    def on_change(self, listener: Callable[[str, bool], None]) -> None: ...


class FaultStore(Protocol):
    tag: str

    def on_change(self, listener: Callable[[str, dict[str, Any]], None]) -> None: ...

    def adopt(self, record: dict[str, Any]) -> bool: ...

    def discard(self, fault_id: str) -> object: ...

    def records(self) -> list[dict[str, Any]]: ...


class ControlSync:
    def __init__(self, link: FleetLink, flags: FlagStore, faults: FaultStore) -> None:
        self.link, self.flags, self.faults = link, flags, faults
        self.flags_key, self.faults_key = link.key("flags"), link.key("faults")
        self._stamps: dict[str, float] = {}  # target → wall clock of the change applied here
        self._applying = False
        faults.tag = f".{link.me}"
        flags.on_change(self._flag_changed)
        faults.on_change(self._fault_changed)
        link.subscribe("flag", self._flag_message)
        link.subscribe("fault", self._fault_message)
        link.on_connect(self._reconcile)

    # -- flags ------------------------------------------------------------------------------

    def _flag_changed(self, target: str, on: bool) -> None:
        if not self._applying:
            self._stamps[target] = self.link.clock.wall()
            self._share_flag(target, on, self._stamps[target])

    def _share_flag(self, target: str, on: bool, at: float) -> None:
        key, record = self.flags_key, _encode({"on": on, "at": at})
        self.link.publish(
            "flag", {"t": target, "on": on, "when": at}, lambda p: p.hset(key, target, record)
        )

    def _apply_flag(self, target: str, on: bool, at: float) -> None:
        if at <= self._stamps.get(target, 0.0):
            return  # this gateway holds a newer change
        self._stamps[target] = at
        self._applying = True
        try:
            self.flags.set(target, on)
        finally:
            self._applying = False

    def _flag_message(self, message: dict[str, Any]) -> None:
        self._apply_flag(str(message["t"]), bool(message["on"]), float(message["when"]))

    # -- faults -----------------------------------------------------------------------------

    def _fault_changed(self, event: str, record: dict[str, Any]) -> None:
        if not self._applying:
            self._share_fault(event, record)

    def _share_fault(self, event: str, record: dict[str, Any]) -> None:
        key, fault_id = self.faults_key, str(record["id"])
        ttl = max(1, int((float(record["expires"]) - self.link.clock.wall()) * 1000)) + 1000

        def state(pipe: Any) -> None:
            if event == "add":
                pipe.hset(key, fault_id, _encode(record))
                pipe.pexpire(key, ttl, nx=True)
                pipe.pexpire(key, ttl, gt=True)
            else:
                pipe.hdel(key, fault_id)

        self.link.publish("fault", {"e": event, "f": record}, state)

    def _adopt(self, record: dict[str, Any]) -> None:
        try:
            self.faults.adopt(record)
        except (KeyError, TypeError, ValueError) as exc:  # a record this version cannot read
            log.warning("fleet_fault_refused", record=repr(record)[:200], error=repr(exc))

    def _fault_message(self, message: dict[str, Any]) -> None:
        record = message["f"]
        if message["e"] == "add":
            self._adopt(record)
        else:
            self.faults.discard(str(record["id"]))

    # -- after a (re)connection ---------------------------------------------------------------

    async def _reconcile(self, redis: Any) -> None:
        flags = {f.decode(): _decode(v) for f, v in (await redis.hgetall(self.flags_key)).items()}
        for target, record in flags.items():
            self._apply_flag(target, bool(record["on"]), float(record["at"]))
        for target, at in list(self._stamps.items()):
            if target not in flags or at > float(flags[target]["at"]):
                self._share_flag(target, self.flags.enabled(target), at)

        faults = {f.decode(): _decode(v) for f, v in (await redis.hgetall(self.faults_key)).items()}
        for record in faults.values():
            self._adopt(record)
        for record in self.faults.records():
            fault_id = str(record["id"])
            if fault_id in faults:
                continue
            if fault_id.endswith(self.faults.tag):
                self._share_fault("add", record)
            else:
                self.faults.discard(fault_id)
