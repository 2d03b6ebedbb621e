"""The liveness probe of managed replicas: one GET of a replica's health path, true on a 2xx
within the timeout. One client for all of a backend's replicas, keeping a connection to each."""

from __future__ import annotations

from failwell.backends.http import HttpUpstream
from failwell.errors import UpstreamError


class Probe:
    def __init__(self) -> None:
        self.client = HttpUpstream("managed-probe", 2)

    async def __call__(self, url: str, timeout: float) -> bool:
        try:
            status, _ = await self.client.request("GET", url, timeout=timeout)
        except UpstreamError:
            return False
        return status < 300

    async def close(self) -> None:
        await self.client.close()
