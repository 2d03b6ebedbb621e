"""The liveness probe of managed replicas: one GET of a replica's health path, true on a 2xx
within the timeout. One aiohttp session per backend, opened on the first probe."""

from __future__ import annotations

import asyncio

import aiohttp


class Probe:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, timeout: float) -> bool:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), skip_auto_headers=("User-Agent",)
            )
        try:
            async with asyncio.timeout(timeout):
                async with self.session.get(url) as resp:
                    await resp.read()
                    return resp.status < 300
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
