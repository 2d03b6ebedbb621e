"""The HTTP client for upstream calls, and the one place where transport failures become
failwell errors.

Purpose-built on asyncio protocols and httptools' parser rather than aiohttp's client: the
benchmark (``make bench``) showed aiohttp's client costing about a third of the gateway's CPU
per request; this client does only what an upstream call needs (POST, keep-alive pool per
replica, bounded connections, TLS) and nothing else. Anything it does not understand closes
the connection and raises an ``UpstreamError``.

This module holds the pool of connections per replica and the translation into errors; one
connection (writing a request, parsing its answer) is ``httpconn.py``, a streamed answer's
body ``httpstream.py``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from functools import partial
from urllib.parse import urlsplit

from failwell.backends.httpconn import Body, BodyQueue, Closed, Connection
from failwell.backends.httpstream import StreamBody
from failwell.backends.slots import Slots
from failwell.config.backends import BackendConfig
from failwell.config.security import upstream_context
from failwell.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamStatus,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["Body", "HttpUpstream", "StreamBody"]


class _Target:
    """One upstream URL and method: where to connect and the request head, built once."""

    __slots__ = ("head", "host", "idle", "port", "slots", "ssl")

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        max_connections: int,
        tls: ssl.SSLContext | None,
        method: str = "POST",
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        secure = parts.scheme == "https"
        self.port = parts.port or (443 if secure else 80)
        self.ssl = (tls or ssl.create_default_context()) if secure else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {path} HTTP/1.1", f"host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.idle: list[Connection] = []
        self.slots = Slots(max_connections)


class HttpUpstream:
    """POSTs JSON to replicas of one backend (and GETs their health and metadata paths).
    ``backend`` labels the errors it raises."""

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
        self._others: dict[tuple[str, str], _Target] = {}  # (method, url) of ``request``

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = _Target(url, self._headers, self._max, self._tls)
        return target

    @staticmethod
    def _idle(target: _Target) -> Connection | None:
        while target.idle:
            conn = target.idle.pop()
            if not conn.closed:
                return conn
        return None

    @staticmethod
    async def _open(target: _Target) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            Connection,
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

    async def request(
        self, method: str, url: str, body: bytes = b"", timeout: float = 5.0, replica: str = ""
    ) -> tuple[int, bytes]:
        """``method`` ``url`` (a health or metadata GET, a webhook POST): the answer's status
        and body, whatever the status; a transport failure (refused, timed out, malformed)
        raises an ``UpstreamError``."""
        target = self._others.get((method, url))
        if target is None:
            headers = (
                self._headers
                if body
                else {k: v for k, v in self._headers.items() if k != "content-type"}
            )
            target = _Target(url, headers, self._max, self._tls, method)
            self._others[(method, url)] = target
        status, payload, conn = await self._exchange(target, url, body, timeout, replica, None)
        self.release(target, conn)
        return status, payload

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
        queue = BodyQueue()
        status, payload, conn = await self._exchange(
            target, url, body, timeout, replica, extra, queue
        )
        if status != 200:
            self._finish(target, conn, status, payload, replica)
        return StreamBody(partial(self.release, target), self.backend, conn, queue, replica)

    async def _exchange(
        self,
        target: _Target,
        url: str,
        body: Body,
        timeout: float,
        replica: str,
        extra: Mapping[str, str] | None,
        stream: BodyQueue | None = None,
    ) -> tuple[int, bytes, Connection]:
        head = target.head
        if extra:
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()).encode("latin-1")
        size = len(body) if isinstance(body, bytes) else sum(len(part) for part in body)
        head = b"%scontent-length: %d\r\n\r\n" % (head, size)
        slots = target.slots
        conn: Connection | None = None
        # The common case takes a slot and an idle connection without awaiting either, and
        # reads the clock of the connection's loop (CPython 3.11's get_running_loop makes a
        # getpid syscall on every call); a wait for either starts the deadline first.
        deadline = 0.0
        try:
            if not slots.take_now():
                deadline = asyncio.get_running_loop().time() + timeout
                async with asyncio.timeout_at(deadline):
                    await slots.take()
            try:
                conn = self._idle(target)
                if conn is None:
                    deadline = deadline or asyncio.get_running_loop().time() + timeout
                    async with asyncio.timeout_at(deadline):
                        conn = await self._open(target)
                status, payload = await conn.send(
                    head, body, deadline or conn.loop.time() + timeout, stream
                )
            finally:
                slots.give()
        except TimeoutError:
            if conn is not None:
                conn.close()
            raise UpstreamTimeout(
                f"no answer within {timeout * 1000:.0f}ms", backend=self.backend, replica=replica
            ) from None
        except UpstreamError as exc:
            exc.backend, exc.replica = self.backend, replica
            raise
        except (Closed, OSError, ssl.SSLError) as exc:
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
        self, target: _Target, conn: Connection, status: int, payload: bytes, replica: str
    ) -> bytes:
        """Give a connection whose response is complete back, and the body or its error."""
        retry_after = conn.retry_after
        self.release(target, conn)
        if status >= 400:
            raise self._refusal(status, payload, retry_after, replica)
        return payload

    @staticmethod
    def release(target: _Target, conn: Connection) -> None:
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

    def close_idle(self) -> None:
        """Close the idle connections (calls in flight finish and close theirs)."""
        for target in (*self._targets.values(), *self._others.values()):
            for conn in target.idle:
                conn.close()
            target.idle.clear()

    async def close(self) -> None:
        self.close_idle()


def client_for(name: str, cfg: BackendConfig, max_connections: int | None = None) -> HttpUpstream:
    """Backend ``name``'s HTTP client as its config says: its API key and its TLS settings
    (``max_connections`` per URL: the backend's own unless given)."""
    headers = {"authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else None
    tls = upstream_context(cfg.tls) if cfg.tls is not None else None
    return HttpUpstream(name, max_connections or cfg.max_connections, headers, tls)
