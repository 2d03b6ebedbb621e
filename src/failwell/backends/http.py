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
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import httptools

from failwell.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamRejected,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_COPY_BELOW = 64 * 1024  # bodies smaller than this are joined to the head for a single write
# A request body: bytes, or parts written one after the other (large tensors, not copied).
Body = bytes | Sequence[bytes | memoryview]


class _Closed(Exception):
    """The connection closed before a whole response arrived."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_length_known",
        "_parser",
        "_status",
        "_waiter",
        "closed",
        "header_length",
        "keep_alive",
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

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, b"".join(self._body)))

    # use
    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, head: bytes, body: Body) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._body = []
        self._status = 0
        self._length_known = False
        self.header_length = None
        self._waiter = asyncio.get_running_loop().create_future()
        if isinstance(body, bytes):
            if len(body) < _COPY_BELOW:  # one write, one syscall
                self.transport.write(head + body)
            else:  # no copy of a large body
                self.transport.writelines((head, body))
        else:
            self.transport.writelines((head, *body))
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
        head = target.head
        if extra:
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()).encode("latin-1")
        size = len(body) if isinstance(body, bytes) else sum(len(part) for part in body)
        head = b"%scontent-length: %d\r\n\r\n" % (head, size)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout), target.slots:
                conn = await self._connect(target)
                status, payload = await conn.send(head, body)
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
        if conn.keep_alive and not conn.closed:
            target.idle.append(conn)
        else:
            conn.close()
        if status >= 500:
            raise UpstreamStatus(
                f"upstream answered {status}", status=status, backend=self.backend, replica=replica
            )
        if status >= 400:
            raise UpstreamRejected(
                f"upstream rejected the request with {status}: {payload[:200]!r}",
                backend=self.backend,
                replica=replica,
            )
        return payload, conn.header_length

    async def close(self) -> None:
        for target in self._targets.values():
            for conn in target.idle:
                conn.close()
            target.idle.clear()
