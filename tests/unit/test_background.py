"""``finish``: a task whose cancellation is lost is cancelled again after the grace; a task's
own cleanup within the grace is not interrupted; a bounded wait gives up and says so."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from failwell import background
from failwell.background import Background, finish


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "GRACE", 0.05)


def test_a_lost_cancellation_is_asked_again() -> None:
    async def scenario() -> int:
        turns = 0

        async def stubborn() -> None:
            nonlocal turns
            with contextlib.suppress(asyncio.CancelledError):  # lost, as in a client library
                await asyncio.sleep(10)
            while True:
                turns += 1
                await asyncio.sleep(0.01)

        task = asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)
        assert await asyncio.wait_for(finish(task), 5) is True  # bounded: never a hang
        assert task.cancelled()
        return turns

    assert asyncio.run(scenario()) >= 1  # it ran on after the first cancellation


def test_cleanup_within_the_grace_is_not_interrupted() -> None:
    async def scenario() -> list[str]:
        done: list[str] = []

        async def tidy() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(0.01)  # records its end
                done.append("recorded")
                raise

        task = asyncio.get_running_loop().create_task(tidy())
        await asyncio.sleep(0)
        await asyncio.wait_for(finish(task), 5)
        return done

    assert asyncio.run(scenario()) == ["recorded"]


def test_a_bounded_wait_gives_up_and_a_failure_is_raised() -> None:
    async def scenario() -> None:
        stop = asyncio.Event()

        async def deaf() -> None:
            while not stop.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.01)

        task = asyncio.get_running_loop().create_task(deaf())
        await asyncio.sleep(0)
        assert await finish(task, timeout=0.2) is False
        stop.set()
        await task

        async def broken() -> None:
            raise ValueError("its own failure")

        failed = asyncio.get_running_loop().create_task(broken())
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="its own failure"):
            await finish(failed)

        loop = Background("loop")
        loop.start(asyncio.sleep(10))
        await loop.stop()
        assert not loop.running

    asyncio.run(scenario())
