"""Real faults for the demo model server, switched at run time through ``POST /_control``.

    {"mode": "ok" | "error" | "malformed" | "close" | "hang" | "slow"
             | "stream_stall" | "stream_cut" | "stream_malformed" | "stream_error",
     "delay_ms": 0, "status": 500, "code": null, "retry_after": null, "after": 0,
     "ready": true}

Each POST sets the whole fault state (omitted keys take their defaults). Modes apply to the
inference endpoints only; ``delay_ms`` is waited first in every mode, so "slow" is "ok" after
the delay, and "error" with a delay is a slow error.

    error      answers ``status`` with a JSON error body; on /v1 routes ``code`` is the OpenAI
               error code (e.g. "context_length_exceeded", "content_filter") and
               ``retry_after`` (seconds) is sent as a Retry-After header
    malformed  answers 200 with a truncated JSON body
    close      writes part of the headers, then aborts the connection
    hang       never answers (until the client goes away or the server stops)
    ready      false makes ``/v2/health/ready`` answer 503
    stream_*   streamed chat answers only, after ``after`` chunks (``demo/stream.py``)
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MALFORMED_BODY = b'{"model_name": "ranker", "outputs": [{"name": "items", "data": [3, 1,'
# Headers cut before their blank line: strict clients see the connection drop mid-headers;
# lenient ones (http.client) read on and miss the 512 promised bytes.
PARTIAL_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 512\r\n"


class FaultMode(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    MALFORMED = "malformed"
    CLOSE = "close"
    HANG = "hang"
    SLOW = "slow"
    STREAM_STALL = "stream_stall"
    STREAM_CUT = "stream_cut"
    STREAM_MALFORMED = "stream_malformed"
    STREAM_ERROR = "stream_error"


@dataclass(frozen=True)
class Fault:
    mode: FaultMode = FaultMode.OK
    delay_ms: int = 0
    status: int = 500
    ready: bool = True
    code: str | None = None
    retry_after: int | None = None
    after: int = 0

    @classmethod
    def parse(cls, body: Any) -> Fault:
        """The fault a control body asks for; ValueError says what is wrong with it."""
        if not isinstance(body, dict):
            raise ValueError("the control body must be a JSON object")
        known = {"mode", "delay_ms", "status", "ready", "code", "retry_after", "after"}
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        try:
            mode = FaultMode(body.get("mode", "ok"))
        except ValueError:
            modes = ", ".join(m.value for m in FaultMode)
            raise ValueError(f"mode must be one of {modes}") from None
        delay, status, ready = (
            body.get("delay_ms", 0),
            body.get("status", 500),
            body.get("ready", True),
        )
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 3_600_000:
            raise ValueError("delay_ms must be an integer from 0 to 3600000")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("status must be an integer HTTP status (100-599)")
        if not isinstance(ready, bool):
            raise ValueError("ready must be true or false")
        code, retry_after = body.get("code"), body.get("retry_after")
        if code is not None and not isinstance(code, str):
            raise ValueError("code must be a string")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError("retry_after must be a non-negative integer (seconds)")
        after = body.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError("after must be a non-negative integer (chunks)")
        return cls(mode, delay, status, ready, code, retry_after, after)


class FaultInjector:
    """The server's current fault and its count of inference requests."""

    def __init__(self) -> None:
        self.fault = Fault()
        self.requests = 0
        self.streams_open = 0  # streamed answers being sent now
        self._released = asyncio.Event()

    def state(self) -> dict[str, Any]:
        f = self.fault
        return {
            "mode": f.mode.value,
            "delay_ms": f.delay_ms,
            "status": f.status,
            "ready": f.ready,
            "code": f.code,
            "retry_after": f.retry_after,
            "after": f.after,
            "streams_open": self.streams_open,
            "requests": self.requests,
        }

    def release(self) -> None:
        """Let hung requests end (the server is stopping)."""
        self._released.set()

    async def apply(
        self, request: web.Request, error_body: Callable[[Fault], bytes]
    ) -> web.StreamResponse | None:
        """Count an inference request and apply the fault: a response to send instead of the
        real answer, or None to answer normally."""
        self.requests += 1
        fault = self.fault
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.mode is FaultMode.ERROR:
            headers = {} if fault.retry_after is None else {"retry-after": str(fault.retry_after)}
            return web.Response(
                status=fault.status,
                body=error_body(fault),
                content_type="application/json",
                headers=headers,
            )
        if fault.mode is FaultMode.MALFORMED:
            return web.Response(status=200, body=MALFORMED_BODY, content_type="application/json")
        if fault.mode is FaultMode.CLOSE:
            transport = request.transport
            if transport is not None:
                transport.write(PARTIAL_HEADERS)
                transport.abort()
            return await self._hold(request)
        if fault.mode is FaultMode.HANG:
            return await self._hold(request)
        return None

    async def _hold(self, request: web.Request) -> web.StreamResponse:
        # The handler is cancelled when the client goes away; at shutdown it is released.
        await self._released.wait()
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)
