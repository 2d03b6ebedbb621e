"""Connection slots: a free slot is taken without awaiting; waiters are served in order; a
cancelled waiter never swallows a slot."""

from __future__ import annotations

import asyncio

from failwell.backends.slots import Slots


def test_free_slots_are_taken_without_waiting_and_come_back() -> None:
    slots = Slots(2)
    assert slots.take_now() and slots.take_now()
    assert not slots.take_now()
    slots.give()
    assert slots.free == 1 and slots.take_now()


def test_waiters_are_served_first_come_first_served() -> None:
    async def main() -> None:
        slots = Slots(1)
        assert slots.take_now()
        order: list[int] = []

        async def waiter(n: int) -> None:
            await slots.take()
            order.append(n)

        tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
        await asyncio.sleep(0)
        assert not slots.take_now()  # queued waiters come before a newcomer
        for _ in range(3):
            slots.give()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2] and slots.free == 0

    asyncio.run(main())


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        slots = Slots(1)
        assert slots.take_now()
        task = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        slots.give()
        assert slots.take_now()  # the slot was not kept for the cancelled waiter

    asyncio.run(main())


def test_a_slot_handed_to_a_waiter_cancelled_meanwhile_passes_on() -> None:
    async def main() -> None:
        slots = Slots(1)
        assert slots.take_now()
        first = asyncio.create_task(slots.take())
        second = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        slots.give()  # handed to ``first``, which is cancelled before it runs
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1.0)  # ``second`` got the slot ``first`` gave back
        assert slots.free == 0

    asyncio.run(main())
