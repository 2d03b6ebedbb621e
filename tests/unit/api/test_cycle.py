"""The whole-response cycle refuses the header bytes uvicorn refuses, and only those; its
message event wakes its waiters as an ``asyncio.Event`` does."""

from __future__ import annotations

import asyncio

import pytest
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from failwell.api.cycle import BAD_IN_NAME, BAD_IN_VALUE, Signal


def test_refused_header_bytes_are_uvicorns() -> None:
    for code in range(256):
        byte = bytes([code])
        assert (code in BAD_IN_NAME) == (HEADER_RE.search(byte) is not None), code
        assert (code in BAD_IN_VALUE) == (HEADER_VALUE_RE.search(byte) is not None), code


def test_signal_is_an_event_for_its_waiters() -> None:
    async def go() -> None:
        signal = Signal(asyncio.get_running_loop())
        waiters = [asyncio.ensure_future(signal.wait()) for _ in range(2)]
        await asyncio.sleep(0)
        assert not signal.is_set() and not any(w.done() for w in waiters)
        signal.set()
        assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True, True]
        assert signal.waiters == []  # each waiter leaves when it is woken
        assert await signal.wait()  # set: no wait
        signal.clear()
        cancelled = asyncio.ensure_future(signal.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert signal.waiters == [] and not signal.is_set()

    asyncio.run(go())
