"""The answer cache: an in-process LRU in front of a SQLite file, so the cache tier survives a
restart. Reads hit the LRU first and SQLite only on a miss; writes update the LRU at once and
reach SQLite in batches from a background thread, off the request path.

A fleet adds a third level shared by every gateway (``shared``): each answer stored is also
handed to it (queued, never waited on), and a read that misses the LRU and SQLite asks it last,
within the time the caller gives ``get`` (the cache tier's budget); a shared hit is kept in the
LRU."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from failwell.clock import SYSTEM_CLOCK, Clock

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    outputs: Any
    model_version: str | None
    stored_at: float  # wall-clock seconds

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)


class SharedAnswers(Protocol):
    def push(self, key: str, entry: CachedAnswer) -> None:
        """Queue ``entry`` for the shared store; never blocks."""
        ...

    async def fetch(self, key: str) -> CachedAnswer | None:
        """The shared store's answer for ``key``; None when it has none or cannot be reached."""
        ...


class AnswerCache:
    def __init__(
        self,
        path: str,
        max_entries: int = 100_000,
        batch: int = 256,
        linger: float = 0.05,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = path
        self.clock = clock  # stored_at and ages are its wall-clock seconds
        self.max_entries = max_entries
        self._lru: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._pending: dict[str, CachedAnswer] = {}  # newest answer per key, not yet on disk
        self._batch = batch
        self.linger = linger
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one thread at a time on the connection
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, outputs BLOB NOT NULL,"
            " model_version TEXT, stored_at REAL NOT NULL)"
        )
        self._warm()
        self.dropped = 0
        self.shared: SharedAnswers | None = None

    def _warm(self) -> None:
        rows = self._db.execute(
            "SELECT key, outputs, model_version, stored_at FROM answers ORDER BY stored_at DESC LIMIT ?",
            (self.max_entries,),
        ).fetchall()
        for key, outputs, version, stored_at in reversed(rows):
            self._lru[key] = CachedAnswer(_decode(outputs), version, stored_at)

    def __len__(self) -> int:
        return len(self._lru)

    def put(self, key: str, outputs: Any, model_version: str | None) -> None:
        """Store an answer. Cheap and synchronous; the disk write happens later, in batches."""
        entry = CachedAnswer(outputs, model_version, self.clock.wall())
        lru = self._lru
        lru[key] = entry
        lru.move_to_end(key)
        if len(lru) > self.max_entries:
            lru.popitem(last=False)
        if self.shared is not None:
            self.shared.push(key, entry)
        if len(self._pending) >= self._batch * 64 and key not in self._pending:
            self.dropped += 1
            return
        self._pending[key] = entry
        if self._wake is not None and not self._wake.is_set():
            self._wake.set()

    def get_memory(self, key: str) -> CachedAnswer | None:
        entry = self._lru.get(key)
        if entry is not None:
            self._lru.move_to_end(key)
        return entry

    def get_disk(self, key: str) -> CachedAnswer | None:
        """Blocking SQLite read: call it from a thread."""
        with self._lock:
            row = self._db.execute(
                "SELECT outputs, model_version, stored_at FROM answers WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return CachedAnswer(_decode(row[0]), row[1], row[2])

    async def get(self, key: str) -> CachedAnswer | None:
        entry = self.get_memory(key)
        if entry is None:
            entry = await asyncio.to_thread(self.get_disk, key)
        if entry is None and self.shared is not None:
            entry = await self.shared.fetch(key)
            if entry is not None:
                self._lru[key] = entry
                if len(self._lru) > self.max_entries:
                    self._lru.popitem(last=False)
        return entry

    def _write(self, batch: list[tuple[str, CachedAnswer]]) -> None:
        rows = [(k, _encode(e.outputs), e.model_version, e.stored_at) for k, e in batch]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def _take(self) -> list[tuple[str, CachedAnswer]]:
        batch, self._pending = list(self._pending.items()), {}
        return batch

    def flush(self) -> None:
        """Write every pending answer now (blocking)."""
        if self._pending:
            self._write(self._take())

    def ping(self) -> None:
        """Raise if the store is unusable; used by readiness."""
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._run(), name="cache-writer")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.linger)  # let a batch build up: one thread hop per batch
            self._wake.clear()
            if self._pending:
                batch = self._take()
                try:
                    await asyncio.to_thread(self._write, batch)
                except sqlite3.Error:
                    self.dropped += len(batch)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await asyncio.to_thread(self.flush)
        with self._lock:
            self._db.close()
