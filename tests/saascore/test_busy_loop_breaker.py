"""A busy process is not a down Redis (saascore/loop_stall.py, saascore/redis/guard.py): a burst
that stalls the event loop past the socket timeout, or fills the connection pool, answers its
calls' defaults without opening the circuit breaker, while a Redis that does not answer on an
idle loop still opens it. Before, the breaker opened under a burst and every cache hit was
served as a miss for its cool-down."""

import asyncio
import time

import pytest
import redis

from saascore.redis.breaker import BreakerState, CircuitBreaker
from saascore.redis.guard import RedisGuard
from saascore.redis.ops import Batch
from tests.redis_servers import paused, private_redis

SOCKET_TIMEOUT = 0.25


def blpop(key: str, seconds: float):
    """An operation the server answers only after ``seconds`` (nothing to pop)."""
    reply = yield Batch([("BLPOP", key, seconds)])
    return reply[0]


def get(key: str):
    reply = yield Batch([("GET", key)])
    return reply[0]


@pytest.fixture
def guarded(tmp_path, settings):
    settings.AI = {"REDIS_SOCKET_TIMEOUT": SOCKET_TIMEOUT, "REDIS_POOL_TIMEOUT": 0.1, "REDIS_MAX_CONNECTIONS": 8}
    with private_redis(tmp_path, search=False) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=SOCKET_TIMEOUT)
        yield server, client, RedisGuard(client, breaker=CircuitBreaker(failure_threshold=1))


async def _blocked_on_the_server(client: redis.Redis, count: int) -> None:
    """Wait (yielding the loop) until ``count`` clients are blocked in BLPOP on the server."""
    while int(client.info("clients")["blocked_clients"]) < count:
        await asyncio.sleep(0)


def test_a_stalled_loop_does_not_open_the_breaker(guarded):
    _, client, guard = guarded

    async def burst():
        assert await guard.arun("warm", lambda: get("k"), "default") is None  # connected, heartbeat on
        calls = [asyncio.create_task(guard.arun("blpop", lambda: blpop("empty", 0.1), "default")) for _ in range(6)]
        await _blocked_on_the_server(client, 6)
        time.sleep(2 * SOCKET_TIMEOUT)  # the loop is busy elsewhere: the replies come, nobody reads them in time
        return await asyncio.gather(*calls)

    answers = asyncio.run(burst())
    # The timer beat the reply for some (which one varies with the loop's order of events): they
    # answered their default; the others read their reply (BLPOP's nil).
    assert "default" in answers and set(answers) <= {"default", None}
    assert guard.breaker.state is BreakerState.CLOSED  # Redis was never the cause


def test_a_full_pool_does_not_open_the_breaker(guarded, settings):
    _, client, guard = guarded
    settings.AI = {**settings.AI, "REDIS_MAX_CONNECTIONS": 1}

    async def crowd():
        holder = asyncio.create_task(guard.arun("blpop", lambda: blpop("empty", 0.15), "default"))
        await _blocked_on_the_server(client, 1)  # the only connection is taken
        waiting = await guard.arun("get", lambda: get("k"), "default")
        state = guard.breaker.state  # before the holder's answer would close it again
        return waiting, state, await holder

    waiting, state, held = asyncio.run(crowd())
    assert (waiting, held) == ("default", None)  # no connection within the pool timeout; the holder answered
    assert state is BreakerState.CLOSED


def test_a_redis_that_does_not_answer_still_opens_the_breaker_on_an_idle_loop(guarded):
    server, _, guard = guarded

    async def ask():
        assert await guard.arun("warm", lambda: get("k"), "default") is None
        with paused(server):
            return await guard.arun("get", lambda: get("k"), "default")

    assert asyncio.run(ask()) == "default"
    assert guard.breaker.state is BreakerState.OPEN


def test_a_read_a_stalled_loop_failed_is_asked_again(guarded):
    """The lookups of a hit (its key, the exact and semantic tiers) are reads: one that timed out
    only because the loop was busy is asked once more, and the hit is served, not missed."""
    _, client, guard = guarded

    async def burst():
        assert await guard.arun("warm", lambda: get("k"), "default") is None
        calls = [
            asyncio.create_task(guard.arun("blpop", lambda: blpop("empty", 0.1), "default", reads_only=True))
            for _ in range(6)
        ]
        await _blocked_on_the_server(client, 6)
        time.sleep(2 * SOCKET_TIMEOUT)
        return await asyncio.gather(*calls)

    assert asyncio.run(burst()) == [None] * 6  # every one answered by Redis, none by its default
    assert guard.breaker.state is BreakerState.CLOSED


def test_a_read_waits_out_a_crowded_pool_rather_than_answer_its_default(guarded, settings):
    """A hit's lookup that finds every connection taken by a burst keeps asking (for up to
    BUSY_READ_SECONDS), far longer than one pool timeout (it used to give up after 4): given up,
    the hit would be answered as a miss behind the burst, by the upstream."""
    server, _, _ = guarded
    settings.AI = {**settings.AI, "REDIS_MAX_CONNECTIONS": 1, "REDIS_POOL_TIMEOUT": 0.02}
    client = redis.Redis.from_url(server.url, socket_timeout=2.0)  # the holder's reply never times out
    guard = RedisGuard(client, breaker=CircuitBreaker(failure_threshold=1))
    client.set("k", "cached")

    async def crowd():
        # The only connection is taken for 0.3 s: fifteen pool timeouts.
        holder = asyncio.create_task(guard.arun("blpop", lambda: blpop("empty", 0.3), "default"))
        await _blocked_on_the_server(client, 1)
        read = await guard.arun("lookup", lambda: get("k"), "default", reads_only=True)
        await holder
        return read

    assert asyncio.run(crowd()) == b"cached"
    assert guard.breaker.state is BreakerState.CLOSED
