"""The shared log backend: one Redis Stream per log stream, for many gateway instances.

    <prefix>:<stream>            the stream; entry id ``<seq>-0``, field ``line`` (the record)
    <prefix>:<stream>:head       ``<seq> <hash>`` of the last record: the chain's head
    <prefix>:<stream>:consumers  hash: consumer name → last acknowledged seq

Instances append with an optimistic transaction (WATCH head, MULTI, XADD..., SET head, EXEC;
retry on conflict), so records from every instance form one chain with one sequence. The
entry id *is* the seq, so a consumer's offset maps straight to an XRANGE start.

A record is durable as far as Redis is: run it with ``appendonly yes`` and
``appendfsync always`` (or ``everysec``, accepting a second of loss) for ``sync`` to mean it.
Every method blocks; the writer calls them from its own thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis

from failwell.log.records import GENESIS, Fields, Record, parse_line, seal
from failwell.log.store import StoreFailed

_PAGE = 1000


class RedisStreamLog:
    def __init__(self, url: str, stream: str, prefix: str = "failwell:log", max_entries: int = 0):
        self.stream = stream
        self.key = f"{prefix}:{stream}"
        self._head_key = f"{self.key}:head"
        self._consumers = f"{self.key}:consumers"
        self.max_entries = max_entries
        self.recovered_bytes = 0
        self._r: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    @property
    def next_seq(self) -> int:
        return self._head()[0] + 1

    def _head(self) -> tuple[int, str]:
        raw = self._r.get(self._head_key)
        if not raw:
            return 0, GENESIS
        seq, _, digest = raw.decode().partition(" ")
        return int(seq), digest

    def append(self, batch: list[Fields]) -> list[Record]:
        try:
            while True:
                with self._r.pipeline() as pipe:
                    try:
                        pipe.watch(self._head_key)
                        raw = pipe.get(self._head_key)
                        seq, prev = (0, GENESIS)
                        if raw:
                            s, _, prev = raw.decode().partition(" ")
                            seq = int(s)
                        out = []
                        for fields in batch:
                            seq += 1
                            record = seal(seq, prev, fields)
                            out.append(record)
                            prev = record.hash
                        pipe.multi()
                        for r in out:
                            pipe.xadd(self.key, {"line": r.line()[:-1]}, id=f"{r.seq}-0")
                        pipe.set(self._head_key, f"{seq} {prev}")
                        if self.max_entries:
                            pipe.xtrim(self.key, maxlen=self.max_entries, approximate=True)
                        pipe.execute()
                        return out
                    except redis.WatchError:
                        continue  # another instance appended first: chain onto its records
        except redis.RedisError as exc:
            raise StoreFailed(f"redis: {exc}") from exc

    def free_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        self._r.close()

    def _range(self, after: int, count: int) -> list[tuple[bytes, bytes]]:
        try:
            entries = self._r.xrange(self.key, min=f"({after}-0", max="+", count=count)
        except redis.RedisError as exc:
            raise StoreFailed(f"redis: {exc}") from exc
        return [(eid, fields[b"line"]) for eid, fields in entries]

    def lines(self) -> Iterator[tuple[bytes, str]]:
        after = 0
        while page := self._range(after, _PAGE):
            for eid, line in page:
                yield line, f"{self.key} id {eid.decode()}"
            after = int(page[-1][0].split(b"-")[0])

    def first_seq(self) -> int | None:
        return None  # XTRIM removes from the start; the stream does not know where it began

    def read(self, after: int, limit: int) -> list[Record]:
        return [parse_line(line)[0] for _, line in self._range(after, limit)]

    def get_offset(self, consumer: str) -> int:
        raw = self._r.hget(self._consumers, consumer)
        return int(raw) if raw else 0

    def set_offset(self, consumer: str, seq: int) -> None:
        self._r.hset(self._consumers, consumer, seq)
