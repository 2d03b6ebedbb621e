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

    __slots__ = ("_backend", "_conn", "_queue", "_release", "_replica")

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

    async def read(self, timeout: float) -> bytes | None:
        """Every byte already arrived, joined (one parse for several network reads), or the
        next bytes within ``timeout`` seconds."""
        queue = self._queue
        if queue.chunks:
            return _take(queue)
        if queue.ended:
            return None
        queue.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await queue.waiter
        except TimeoutError:
            raise UpstreamTimeout(
                f"no bytes within {timeout * 1000:.0f}ms",
                backend=self._backend,
                replica=self._replica,
            ) from None
        finally:
            queue.waiter = None
        return _take(queue) if queue.chunks else None

    def close(self) -> None:
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
