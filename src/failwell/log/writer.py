"""The log writer: one thread per stream that seals, writes and fsyncs records in groups.

The event loop only encodes the record's fields (msgspec, ~2 µs: short-lived objects, less
garbage than queueing dicts) and appends them to a queue (and, in sync mode, awaits a future); the thread takes
everything queued, appends it to the store as one batch (one write, one fdatasync) and
resolves the futures with one ``call_soon_threadsafe``. So the loop never blocks on the disk.

- ``sync``: the thread commits as soon as records are queued; a batch is whatever arrived
  while the previous commit ran (group commit).
- ``batch``: the same, but commits start at most once per ``window``. A record waits at most
  ``window`` plus one commit before it is durable; ``failwell_log_lag_seconds`` measures it.

When the store fails (disk full, I/O error, Redis down) the batch is dropped and counted, its
futures fail with ``LogUnavailable``, and the writer reports itself down until a commit
succeeds again."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from failwell.errors import LogUnavailable
from failwell.log.metrics import LogMetrics
from failwell.log.records import Fields, encode_fields
from failwell.log.store import LogStore, StoreFailed
from failwell.observe.logging import log

_MAX_BATCH = 8192
_FREE_EVERY = 1.0  # seconds between disk-space checks


class _Pending(msgspec.Struct):  # built in C: one per record
    fields: bytes | None  # encoded JSON; None: a barrier, resolved once all before it are
    enqueued: float
    done: asyncio.Future[None] | None


class LogWriter:
    def __init__(
        self,
        open_store: Callable[[], LogStore],
        stream: str,
        metrics: LogMetrics,
        *,
        window: float = 0.0,
        max_pending: int = 100_000,
        min_free: int = 0,
    ) -> None:
        self.stream = stream
        self.window = window
        self.max_pending = max_pending
        self.min_free = min_free
        self.store: LogStore | None = None
        self.healthy = True
        self.last_error: str | None = None
        self.free: int | None = None
        self._open_store = open_store
        self._metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._waiting = False  # the writer waits on _cond for a record (set before it looks)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._free_at = 0.0

    # -- the event loop's side ----------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store = await asyncio.to_thread(self._open_store)  # recovery reads the tail
        if self.store.recovered_bytes:
            self._metrics.recovered(self.stream, self.store.recovered_bytes)
        self._check_free(force=True)
        self._thread = threading.Thread(target=self._run, name=f"log-{self.stream}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        if self.store is not None:
            self.store.close()

    @property
    def ready(self) -> bool:
        return self.healthy and (self.free is None or self.free >= self.min_free)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, fields: dict[str, Any]) -> None:
        """Queue a record; returns at once. Dropped and counted when the queue is full."""
        self._put(_Pending(encode_fields(fields), time.monotonic(), None))

    def durable(self, fields: dict[str, Any]) -> asyncio.Future[None]:
        """Queue a record; the future resolves when it is durable (or fails: LogUnavailable)."""
        assert self._loop is not None, "the writer is not started"
        done = self._loop.create_future()
        self._put(_Pending(encode_fields(fields), time.monotonic(), done))
        return done

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once every record queued before it is durable."""
        assert self._loop is not None, "the writer is not started"
        done = self._loop.create_future()
        self._put(_Pending(None, time.monotonic(), done))
        return done

    def _put(self, item: _Pending) -> None:
        if self._stopping or len(self._queue) >= self.max_pending:
            self._metrics.dropped(self.stream, "stopping" if self._stopping else "queue_full")
            if item.done is not None:
                item.done.set_exception(LogUnavailable(f"the {self.stream} log queue is full"))
            return
        # deque.append is atomic: the condition is taken only to wake a writer that waits
        # (it says so before it looks at the queue, so no record is missed)
        self._queue.append(item)
        if self._waiting:
            with self._cond:
                self._cond.notify()

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._waiting = True
                while not self._queue and not self._stopping:
                    self._cond.wait(_FREE_EVERY)
                    self._check_free()
                self._waiting = False
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(_MAX_BATCH, len(self._queue)))]
            started = time.monotonic()
            self._commit(batch)
            self._check_free()
            if self.window and not self._stopping:
                time.sleep(max(0.0, self.window - (time.monotonic() - started)))

    def _commit(self, batch: list[_Pending]) -> None:
        assert self.store is not None
        fields: list[Fields] = [p.fields for p in batch if p.fields is not None]
        error: BaseException | None = None
        started = time.monotonic()
        try:
            if fields:
                self.store.append(fields)
        except (OSError, StoreFailed) as exc:
            error = LogUnavailable(f"the {self.stream} log cannot write: {exc}")
            if self.healthy:
                log.error("log_write_failed", stream=self.stream, error=str(exc))
            self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"
            self._metrics.dropped(self.stream, "write_failed", len(fields))
        else:
            now = time.monotonic()
            if not self.healthy:
                log.warning("log_write_recovered", stream=self.stream)
            self.healthy, self.last_error = True, None
            self._metrics.committed(self.stream, len(fields), now - started)
            self._metrics.lag(self.stream, [now - p.enqueued for p in batch if p.fields])
        self._metrics.pending(self.stream, len(self._queue))
        self._metrics.up(self.stream, self.healthy)
        futures = [p.done for p in batch if p.done is not None]
        if futures and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us at shutdown
                self._loop.call_soon_threadsafe(_resolve, futures, error)

    def _check_free(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.store is None or (not force and now < self._free_at):
            return
        self._free_at = now + _FREE_EVERY
        try:
            self.free = self.store.free_bytes()
        except OSError:
            self.free = 0
        if self.free is not None:
            self._metrics.disk_free(self.stream, self.free)


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for f in futures:
        if f.done():
            continue
        if error is None:
            f.set_result(None)
        else:
            f.set_exception(error)
