"""Reading a log: records in a time range with filters, and consumers with stored offsets.

A consumer resumes exactly after the last record it acknowledged: ``poll`` returns records
after the stored offset, ``ack(seq)`` stores the new offset durably (atomic replace + fsync on
the segment backend, HSET on Redis). Acknowledge after the record's effect is done and a
consumer stopped between records neither skips nor repeats one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from failwell.config.units import parse_duration
from failwell.log.records import Record
from failwell.log.store import LogStore

_PAGE = 1000


def parse_when(value: str | None) -> float | None:
    """'2026-11-23T12:00:00+00:00', '2026-11-23 12:00' (UTC) or '15m' (that long ago)."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        pass
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class Filter:
    since: float | None = None
    until: float | None = None
    route: str | None = None
    tier: str | None = None

    def __call__(self, fields: dict[str, Any]) -> bool:
        t = fields.get("time", 0.0)
        if self.since is not None and t < self.since:
            return False
        if self.until is not None and t >= self.until:
            return False
        if self.route is not None and fields.get("route") != self.route:
            return False
        return self.tier is None or fields.get("tier") == self.tier


def scan(store: LogStore, after: int = 0) -> Iterator[Record]:
    """Every record after seq ``after``, oldest first (pages through the store)."""
    while page := store.read(after, _PAGE):
        yield from page
        after = page[-1].seq


def select(store: LogStore, match: Filter, after: int = 0) -> Iterator[dict[str, Any]]:
    for record in scan(store, after):
        fields = record.fields()
        if match(fields):
            yield fields


class Consumer:
    def __init__(self, store: LogStore, name: str) -> None:
        self.store, self.name = store, name
        self.offset = store.get_offset(name)

    def poll(self, limit: int = _PAGE) -> list[Record]:
        return self.store.read(self.offset, limit)

    def ack(self, seq: int) -> None:
        self.store.set_offset(self.name, seq)
        self.offset = seq
