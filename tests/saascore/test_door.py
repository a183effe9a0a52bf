"""The door (saascore/door.py): newest first, oldest first after its wait, no place kept by a
request that went away, one place per request however many layers enter it."""

import asyncio

import pytest

from saascore import door as doors
from tests.serving import until


def test_the_door_lets_the_newest_in_first_the_oldest_after_its_wait_and_keeps_no_place_for_the_cancelled(
    monkeypatch,
):
    async def run():
        door = doors.Door(1)
        order: list[str] = []

        async def visit(name: str) -> None:
            await door.enter()
            order.append(name)
            door.leave()

        await door.enter()  # the one place, held
        first = asyncio.create_task(visit("first"))
        await until(lambda: len(door._waiting) == 1, "the first never waited")
        gone = asyncio.create_task(visit("gone"))
        second = asyncio.create_task(visit("second"))
        await until(lambda: len(door._waiting) == 3, "the others never waited")
        gone.cancel()  # a client that left while waiting
        with pytest.raises(asyncio.CancelledError):
            await gone
        door.leave()
        await asyncio.gather(first, second)
        assert order == ["second", "first"]  # newest first; the cancelled one took no place

        await door.enter()
        old = asyncio.create_task(visit("old"))
        await until(lambda: len(door._waiting) == 1, "the old one never waited")
        monkeypatch.setattr(doors, "OLDEST_FIRST_AFTER", 0.0)  # it has waited long enough
        new = asyncio.create_task(visit("new"))
        await until(lambda: len(door._waiting) == 2, "the new one never waited")
        door.leave()
        await asyncio.gather(old, new)
        assert order[2:] == ["old", "new"]
        assert (door._inside, len(door._waiting)) == (0, 0)  # every place given back

    asyncio.run(run())


def test_a_request_holds_one_place_however_many_layers_enter_and_gives_it_back_once(settings):
    settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 2}

    async def run():
        door = doors.this_loops()
        async with doors.entered():  # the server's layer
            async with doors.entered():  # the pipeline's, inside the same request
                assert door._inside == 1

                async def other_task_of_the_request() -> int:
                    async with doors.entered():
                        return door._inside

                assert await asyncio.create_task(other_task_of_the_request()) == 1  # it shares the place
                doors.leave()  # a miss, once the exact tier has missed
                assert door._inside == 0
            doors.leave()  # again: nothing more to give back
        assert door._inside == 0

        settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 0}
        async with doors.entered():  # no door: nothing to wait for
            doors.leave()

    asyncio.run(run())


def test_each_event_loop_has_its_own_door_rebuilt_when_its_size_changes(settings):
    async def this_loops_twice():
        settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 3}
        first = doors.this_loops()
        assert doors.this_loops() is first and first.size == 3
        settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 5}
        resized = doors.this_loops()
        assert resized is not first and resized.size == 5
        settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 0}
        assert doors.this_loops() is None  # 0: no door
        settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 5}
        return doors.this_loops()

    one, other = asyncio.run(this_loops_twice()), asyncio.run(this_loops_twice())
    assert one is not other  # another loop (another worker) has a door of its own


def test_a_waiter_cancelled_then_passed_over_raises_cancelled_and_keeps_no_place():
    """Cancelled while it waited, then passed over by a leave() before it ran again: it is
    cancelled (not a ValueError from a line it is no longer in), and the place went on."""

    async def run():
        door = doors.Door(1)
        await door.enter()  # the one place, held here
        waiting = asyncio.create_task(door.enter())
        await until(lambda: len(door._waiting) == 1, "the second request never waited")
        waiting.cancel()  # its future is cancelled now; the task runs again later
        door.leave()  # passes it over (cancelled): nobody is left inside
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return door

    door = asyncio.run(run())
    assert door._inside == 0 and not door._waiting
