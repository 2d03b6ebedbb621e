"""The shared HTTP client for upstream calls: one aiohttp session per backend, and the one
place where aiohttp's exceptions become failwell errors."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

import aiohttp

from failwell.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_JSON = {"content-type": "application/json"}


class HttpUpstream:
    """POSTs JSON to replicas of one backend. ``backend`` labels the errors it raises."""

    def __init__(
        self,
        backend: str,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.backend = backend
        self._tls = tls
        self._connector_limit = max_connections
        self._headers = {**_JSON, **(headers or {})}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,
                    limit_per_host=self._connector_limit,
                    ttl_dns_cache=None,
                    ssl=self._tls if self._tls is not None else True,
                ),
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,
            )
        return self._session

    async def post(
        self,
        url: str,
        body: bytes,
        timeout: float,
        replica: str,
        extra: Mapping[str, str] | None = None,
    ) -> bytes:
        headers = {**self._headers, **extra} if extra else self._headers
        try:
            async with asyncio.timeout(timeout):
                async with self._client().post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    status = resp.status
        except TimeoutError:
            raise UpstreamTimeout(
                f"no answer within {timeout * 1000:.0f}ms", backend=self.backend, replica=replica
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(
                f"{type(exc).__name__}: {exc}", backend=self.backend, replica=replica
            ) from None
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
        return payload

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def label_error(exc: UpstreamError, backend: str, replica: str, attempt: int) -> UpstreamError:
    exc.backend = exc.backend or backend
    exc.replica = exc.replica or replica
    exc.attempt = attempt
    return exc
