"""The HTTP client for upstream calls, and the one place where transport failures become
failwell errors.

Purpose-built on asyncio protocols and httptools' parser rather than aiohttp's client: the
benchmark (``make bench``) showed aiohttp's client costing about a third of the gateway's CPU
per request; this client does only what an upstream call needs (POST, keep-alive pool per
replica, bounded connections, TLS) and nothing else. Anything it does not understand closes
the connection and raises an ``UpstreamError``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import httptools

from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamRejected,
    UpstreamStatus,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_COPY_BELOW = 64 * 1024  # bodies smaller than this (all parts) are joined to the head: one write
# A request body: bytes, or parts written one after the other (large tensors, not copied).
Body = bytes | Sequence[bytes | memoryview]


class _Closed(Exception):
    """The connection closed before a whole response arrived."""


class _BodyQueue:
    """A streamed response body: the parser pushes, ``StreamBody.read`` waits."""

    __slots__ = ("chunks", "ended", "waiter")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.ended = False
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, data: bytes) -> None:
        self.chunks.append(data)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_queue",
        "_length_known",
        "_parser",
        "_status",
        "_stream",
        "_waiter",
        "closed",
        "header_length",
        "keep_alive",
        "retry_after",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._status = 0
        self._length_known = False
        self.header_length: bytes | None = None  # a v2 answer's Inference-Header-Content-Length
        self.retry_after: bytes | None = None
        self._stream: _BodyQueue | None = None  # set while a 200's body streams
        self._body_queue: _BodyQueue | None = None  # a streamed request waiting for its head
        self.closed = False
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamMalformed(f"invalid HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._stream is not None:
            self._stream.end()  # a cut is told from an end by the stream's own framing
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._status and not self._length_known:  # a body delimited by the close
                waiter.set_result((self._status, b"".join(self._body)))
            else:
                waiter.set_exception(_Closed("connection closed mid-response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"content-length" or lname == b"transfer-encoding":
            self._length_known = True
        elif lname == b"inference-header-content-length":
            self.header_length = value
        elif lname == b"retry-after":
            self.retry_after = value

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status == 200 and self._body_queue is not None:
            self._stream, self._body_queue = self._body_queue, None
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result((200, b""))

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.push(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        if self._stream is not None:
            self._stream.end()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, b"".join(self._body)))

    # use
    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(
        self, head: bytes, body: Body, stream: _BodyQueue | None = None
    ) -> asyncio.Future[tuple[int, bytes]]:
        """Write a request; the future gives (status, body). With ``stream``, a 200's future
        resolves at the end of its head and the body goes to ``stream`` as it arrives."""
        assert self.transport is not None
        self._body_queue, self._stream = stream, None
        self._body = []
        self._status = 0
        self._length_known = False
        self.header_length = None
        self.retry_after = None
        self._waiter = asyncio.get_running_loop().create_future()
        parts = (body,) if isinstance(body, bytes) else body
        if sum(len(part) for part in parts) < _COPY_BELOW:  # one write, one syscall
            self.transport.write(b"".join((head, *parts)))
        else:  # no copy of a large body: the head, then each part as it is (one writev)
            self.transport.writelines((head, *parts))
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Target:
    """One upstream URL: where to connect and the request head, built once."""

    __slots__ = ("head", "host", "idle", "port", "slots", "ssl")

    def __init__(
        self, url: str, headers: Mapping[str, str], max_connections: int, tls: ssl.SSLContext | None
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        secure = parts.scheme == "https"
        self.port = parts.port or (443 if secure else 80)
        self.ssl = (tls or ssl.create_default_context()) if secure else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)


class HttpUpstream:
    """POSTs JSON to replicas of one backend. ``backend`` labels the errors it raises."""

    def __init__(
        self,
        backend: str,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.backend = backend
        self._max = max_connections
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._tls = tls
        self._targets: dict[str, _Target] = {}

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = _Target(url, self._headers, self._max, self._tls)
        return target

    async def _connect(self, target: _Target) -> _Connection:
        while target.idle:
            conn = target.idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection,
            target.host,
            target.port,
            ssl=target.ssl,
            server_hostname=target.host if target.ssl else None,
        )
        return conn

    async def post(
        self,
        url: str,
        body: bytes,
        timeout: float,
        replica: str,
        extra: Mapping[str, str] | None = None,
    ) -> bytes:
        """POST ``body`` and return the answer's body; raises an ``UpstreamError``."""
        return (await self.exchange(url, body, timeout, replica, extra))[0]

    async def exchange(
        self,
        url: str,
        body: Body,
        timeout: float,
        replica: str,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[bytes, bytes | None]:
        """POST ``body`` (bytes, or parts sent one after the other): the answer's body and its
        Inference-Header-Content-Length, if any."""
        target = self._target(url)
        status, payload, conn = await self._exchange(target, url, body, timeout, replica, extra)
        length = conn.header_length  # read before the connection goes back to the pool
        return self._finish(target, conn, status, payload, replica), length

    async def open_stream(
        self,
        url: str,
        body: bytes,
        timeout: float,
        replica: str,
        extra: Mapping[str, str] | None = None,
    ) -> StreamBody:
        """POST and return the 200's body as it arrives (the head within ``timeout``); any
        other status raises as ``post`` does. The caller must ``close`` the body."""
        target = self._target(url)
        queue = _BodyQueue()
        status, payload, conn = await self._exchange(
            target, url, body, timeout, replica, extra, queue
        )
        if status != 200:
            self._finish(target, conn, status, payload, replica)
        return StreamBody(self, target, conn, queue, replica)

    async def _exchange(
        self,
        target: _Target,
        url: str,
        body: Body,
        timeout: float,
        replica: str,
        extra: Mapping[str, str] | None,
        stream: _BodyQueue | None = None,
    ) -> tuple[int, bytes, _Connection]:
        head = target.head
        if extra:
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()).encode("latin-1")
        size = len(body) if isinstance(body, bytes) else sum(len(part) for part in body)
        head = b"%scontent-length: %d\r\n\r\n" % (head, size)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout), target.slots:
                conn = await self._connect(target)
                status, payload = await conn.send(head, body, stream)
        except TimeoutError:
            if conn is not None:
                conn.close()
            raise UpstreamTimeout(
                f"no answer within {timeout * 1000:.0f}ms", backend=self.backend, replica=replica
            ) from None
        except UpstreamError as exc:
            exc.backend, exc.replica = self.backend, replica
            raise
        except (_Closed, OSError, ssl.SSLError) as exc:
            if conn is not None:
                conn.close()
            raise UpstreamUnavailable(
                f"{type(exc).__name__}: {exc}", backend=self.backend, replica=replica
            ) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return status, payload, conn

    def _finish(
        self, target: _Target, conn: _Connection, status: int, payload: bytes, replica: str
    ) -> bytes:
        """Give a connection whose response is complete back, and the body or its error."""
        retry_after = conn.retry_after
        self.release(target, conn)
        if status >= 400:
            raise self._refusal(status, payload, retry_after, replica)
        return payload

    @staticmethod
    def release(target: _Target, conn: _Connection) -> None:
        if conn.keep_alive and not conn.closed:
            target.idle.append(conn)
        else:
            conn.close()

    def _refusal(
        self, status: int, payload: bytes, retry_after: bytes | None, replica: str
    ) -> UpstreamError:
        """The error for an answer of ``status`` >= 400: 5xx the replica failed, 429 it asks
        for time (``Retry-After`` in seconds), any other 4xx it refused the request."""
        if status >= 500:
            return UpstreamStatus(
                f"upstream answered {status}", status=status, backend=self.backend, replica=replica
            )
        if status == 429:
            seconds = retry_after.strip() if retry_after is not None else b""
            return UpstreamThrottled(
                "upstream answered 429 (too many requests)",
                retry_after=float(seconds) if seconds.isdigit() else None,
                backend=self.backend,
                replica=replica,
            )
        return UpstreamRejected(
            f"upstream rejected the request with {status}: {payload[:200]!r}",
            status=status,
            body=payload,
            backend=self.backend,
            replica=replica,
        )

    async def close(self) -> None:
        for target in self._targets.values():
            for conn in target.idle:
                conn.close()
            target.idle.clear()


class StreamBody:
    """A 200's body as it arrives. ``read`` gives bytes, ``None`` at the end (or when the
    connection dropped: the stream's framing tells a cut from an end); ``close`` gives the
    connection back if the body ended, else closes it (the upstream stops generating)."""

    __slots__ = ("_conn", "_http", "_queue", "_replica", "_target")

    def __init__(
        self,
        http: HttpUpstream,
        target: _Target,
        conn: _Connection,
        queue: _BodyQueue,
        replica: str,
    ) -> None:
        self._http, self._target, self._conn = http, target, conn
        self._queue, self._replica = queue, replica

    async def read(self, timeout: float) -> bytes | None:
        queue = self._queue
        if queue.chunks:
            return queue.chunks.popleft()
        if queue.ended:
            return None
        queue.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await queue.waiter
        except TimeoutError:
            raise UpstreamTimeout(
                f"no bytes within {timeout * 1000:.0f}ms",
                backend=self._http.backend,
                replica=self._replica,
            ) from None
        finally:
            queue.waiter = None
        return queue.chunks.popleft() if queue.chunks else None

    def close(self) -> None:
        conn = self._conn
        if self._queue.ended and not self._queue.chunks and not conn.closed:
            conn._stream = None
            self._http.release(self._target, conn)
        else:
            conn.close()
