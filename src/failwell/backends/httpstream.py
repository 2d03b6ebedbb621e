"""A streamed upstream answer: a 200's body read as it arrives (chat streams)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from failwell.backends.httpconn import BodyQueue, Connection
from failwell.errors import UpstreamTimeout


class StreamBody:
    """A 200's body as it arrives. ``read`` gives bytes, ``None`` at the end (or when the
    connection dropped: the stream's framing tells a cut from an end); ``close`` gives the
    connection back if the body ended, else closes it (the upstream stops generating)."""

    __slots__ = (
        "_armed",
        "_backend",
        "_conn",
        "_deadline",
        "_expired",
        "_queue",
        "_release",
        "_replica",
        "_timer",
    )

    def __init__(
        self,
        release: Callable[[Connection], None],
        backend: str,
        conn: Connection,
        queue: BodyQueue,
        replica: str,
    ) -> None:
        self._release, self._backend, self._conn = release, backend, conn
        self._queue, self._replica = queue, replica
        # One timer for the read deadline, moved on lazily: a chunk that arrives in time does
        # not cancel and re-arm a timer (a read every few milliseconds, a deadline of seconds).
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when the timer fires (loop time)
        self._deadline = 0.0  # when the read waiting now times out
        self._expired = False

    async def read(self, timeout: float) -> bytes | None:
        """Every byte already arrived, joined (one parse for several network reads), or the
        next bytes within ``timeout`` seconds."""
        queue = self._queue
        if queue.chunks:
            return _take(queue)
        if queue.ended:
            return None
        loop = asyncio.get_running_loop()
        waiter = queue.waiter = loop.create_future()
        self._deadline = deadline = loop.time() + timeout
        if self._timer is None or self._armed > deadline:
            self._arm(loop, deadline)
        try:
            await waiter
        finally:
            queue.waiter = None
        if self._expired:
            self._expired = False
            raise UpstreamTimeout(
                f"no bytes within {timeout * 1000:.0f}ms",
                backend=self._backend,
                replica=self._replica,
            )
        return _take(queue) if queue.chunks else None

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = when
        self._timer = loop.call_at(when, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        waiter = self._queue.waiter
        if waiter is None or waiter.done():
            return  # no read waits: the next one arms a timer
        if loop.time() < self._deadline:
            self._arm(loop, self._deadline)  # bytes came since: wait on to the new deadline
            return
        self._expired = True
        waiter.set_result(None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._conn
        if self._queue.ended and not self._queue.chunks and not conn.closed:
            conn.stream_done()
            self._release(conn)
        else:
            conn.close()


def _take(queue: BodyQueue) -> bytes:
    chunks = queue.chunks
    if len(chunks) == 1:
        return chunks.popleft()
    data = b"".join(chunks)
    chunks.clear()
    return data
