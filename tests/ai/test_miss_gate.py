"""Misses prepare a few at a time per process (ai/miss_gate.py), yet wait on the upstream all
together; exact hits never wait for a permit, and a request that goes away gives its permit
back. In process, on one event loop (the gate is per loop, as per worker), against the real
PostgreSQL, Redis and embedder; the upstream is tests/openai_server.py."""

import asyncio
import threading
import uuid

import pytest

from ai import pipeline
from ai.context import CacheControl
from ai.pipeline import answer_query
from ai.streaming import Live, stream_query
from saascore.door import this_loops
from tests.serving import until

pytestmark = pytest.mark.django_db(transaction=True)

HOURS = "What are your support hours?"


def case(n: int) -> str:
    return f"How do I reset my password, case {n}?"


def ask(tenant, query: str):
    return answer_query(tenant=tenant, query=query, user_id=None, request_id=uuid.uuid4().hex)


def stream(tenant, query: str):
    control = CacheControl.from_mode("auto")
    return stream_query(tenant=tenant, query=query, user_id=None, request_id=uuid.uuid4().hex, control=control)


async def reaches_upstream(reply) -> None:
    assert await asyncio.to_thread(reply.arrived.wait, 20), "the call never reached the upstream"


@pytest.fixture
def one_permit(helpdesk, upstream, settings):
    """A tenant whose HOURS answer is cached (its exact hits), with one miss preparing at a time."""
    settings.AI = {**settings.AI, "MISS_PREPARE_CONCURRENCY": 1}
    tenant, _ = helpdesk()
    upstream.reply(content="Nine to five, Monday to Friday.")
    cached = asyncio.run(ask(tenant, HOURS))
    assert (cached.source, cached.cache["stored"]) == ("llm", "stored")
    return tenant


def test_misses_prepare_one_at_a_time_but_wait_on_the_upstream_together(one_permit, upstream, monkeypatch):
    preparing, most = 0, 0
    route = pipeline._route

    async def counted(ctx, generation):
        nonlocal preparing, most
        preparing += 1
        most = max(most, preparing)
        try:
            await asyncio.sleep(0.2)  # time enough for the other miss to start preparing too, were it let in
            return await route(ctx, generation)
        finally:
            preparing -= 1

    monkeypatch.setattr(pipeline, "_route", counted)
    release = threading.Event()
    held = [upstream.reply(content=f"Answer {n}.", hold=release) for n in range(2)]

    async def run():
        misses = [asyncio.create_task(ask(one_permit, case(n))) for n in range(2)]
        try:
            for reply in held:  # both calls in flight at once: neither holds its permit upstream
                await reaches_upstream(reply)
            hit = await asyncio.wait_for(ask(one_permit, HOURS), 10)
        finally:
            release.set()
        return hit, await asyncio.gather(*misses)

    hit, answers = asyncio.run(run())
    assert most == 1  # one at a time
    assert hit.cache["tier"] == "exact"
    assert sorted((a.source, a.response) for a in answers) == [("llm", "Answer 0."), ("llm", "Answer 1.")]


def test_exact_hits_pass_the_line_and_a_request_that_goes_away_gives_its_permit_back(one_permit, monkeypatch):
    entered: list[str] = []
    route = pipeline._route

    async def stuck_first(ctx, generation):
        entered.append(ctx.query)
        if ctx.query == case(0):
            await asyncio.Event().wait()  # prepares until its client goes away
        return await route(ctx, generation)

    monkeypatch.setattr(pipeline, "_route", stuck_first)

    async def run():
        holder = asyncio.create_task(ask(one_permit, case(0)))
        await until(lambda: entered == [case(0)], "the first miss never started preparing")
        waiting = asyncio.create_task(ask(one_permit, case(1)))
        gone = asyncio.create_task(ask(one_permit, case(2)))
        await asyncio.sleep(0.3)
        assert entered == [case(0)]  # the others wait in line, not embedded yet
        hit = await asyncio.wait_for(ask(one_permit, HOURS), 10)  # while the permit is held

        gone.cancel()  # a client that left while in line
        holder.cancel()  # and one that left while preparing: its permit goes to the next in line
        answered = await asyncio.wait_for(waiting, 20)
        after = await asyncio.wait_for(ask(one_permit, case(3)), 20)  # no permit was kept by either
        for task in (holder, gone):
            with pytest.raises(asyncio.CancelledError):
                await task
        return hit, answered, after

    hit, answered, after = asyncio.run(run())
    assert hit.cache["tier"] == "exact"
    assert (answered.source, after.source) == ("llm", "llm")
    assert entered == [case(0), case(1), case(3)]


def test_a_streamed_miss_gives_its_permit_back_before_its_stream_starts(one_permit, upstream):
    release = threading.Event()
    slow = upstream.reply(content="Open Settings, then Security.", hold=release)
    upstream.reply(content="Whole answer.")

    async def run():
        live = await asyncio.wait_for(stream(one_permit, case(0)), 20)
        assert isinstance(live, Live)

        async def read() -> str:
            return "".join([piece async for piece in live.pieces])

        reading = asyncio.create_task(read())
        try:
            await reaches_upstream(slow)
            whole = await asyncio.wait_for(ask(one_permit, case(1)), 20)  # the permit is free meanwhile
            hit = await asyncio.wait_for(stream(one_permit, HOURS), 10)
        finally:
            release.set()
        return whole, hit, await reading

    whole, hit, text = asyncio.run(run())
    assert (whole.source, whole.response) == ("llm", "Whole answer.")
    assert hit.cache["tier"] == "exact"
    assert text == "Open Settings, then Security."


def test_requests_wait_at_the_door_newest_first_and_a_miss_leaves_it_before_it_prepares(
    one_permit, settings, monkeypatch
):
    settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 1}
    route = pipeline._route

    async def run():
        started = asyncio.Event()

        async def stuck(ctx, generation):
            started.set()
            await asyncio.Event().wait()  # prepares until its client goes away
            return await route(ctx, generation)

        monkeypatch.setattr(pipeline, "_route", stuck)
        miss = asyncio.create_task(ask(one_permit, case(0)))
        await asyncio.wait_for(started.wait(), 20)
        hit = await asyncio.wait_for(ask(one_permit, HOURS), 10)  # the miss is no longer at the door
        miss.cancel()
        with pytest.raises(asyncio.CancelledError):
            await miss

        door = this_loops()
        await door.enter()  # the door's one place, held here
        answered: list[str] = []
        older = asyncio.create_task(ask(one_permit, HOURS))
        older.add_done_callback(lambda _: answered.append("older"))
        await until(lambda: len(door._waiting) == 1, "the first hit never waited at the door")
        newer = asyncio.create_task(ask(one_permit, HOURS))
        newer.add_done_callback(lambda _: answered.append("newer"))
        await until(lambda: len(door._waiting) == 2, "the second hit never waited at the door")
        door.leave()
        results = await asyncio.wait_for(asyncio.gather(older, newer), 20)
        return hit, results, answered

    hit, results, answered = asyncio.run(run())
    assert hit.cache["tier"] == "exact"
    assert [r.cache["tier"] for r in results] == ["exact", "exact"]
    assert answered == ["newer", "older"]
