"""The one interface every log backend implements, and the factory that picks one by config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from failwell.config.log import LogBackend, LogConfig
from failwell.log.records import Fields, Record

STREAMS = ("inference", "audit")


class StoreFailed(Exception):
    """The log store could not be reached or refused the write."""


class LogStore(Protocol):
    """One stream of records. Every method blocks: call them from a thread."""

    stream: str
    recovered_bytes: int

    @property
    def next_seq(self) -> int: ...

    def append(self, batch: list[Fields]) -> list[Record]:
        """Seal ``batch`` onto the chain and make it durable; all or nothing."""

    def read(self, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` records with seq > ``after``, in order."""

    def lines(self) -> Iterator[tuple[bytes, str]]:
        """Every stored line, oldest first, with where it is (for ``verify``)."""

    def first_seq(self) -> int | None:
        """The seq the oldest stored record must have, when the store knows it (segments are
        named by it): lets ``verify`` catch records cut from the start."""

    def get_offset(self, consumer: str) -> int: ...

    def set_offset(self, consumer: str, seq: int) -> None: ...

    def free_bytes(self) -> int | None:
        """Free space where the log lives; None when the backend cannot tell."""

    def close(self) -> None: ...


def open_store(cfg: LogConfig, stream: str, *, writer: bool = False) -> LogStore:
    if cfg.backend is LogBackend.REDIS:
        from failwell.log.redis_stream import RedisStreamLog

        assert cfg.redis_url is not None
        return RedisStreamLog(cfg.redis_url, stream, cfg.redis_prefix, cfg.retention.max_entries)
    from failwell.log.segments import SegmentLog

    return SegmentLog(
        cfg.path,
        stream,
        writer=writer,
        segment_size=cfg.segment_size,
        max_size=cfg.retention.max_size,
        max_age=cfg.retention.max_age,
    )
