"""Redis operations written once, run from sync or async code.

An operation is a generator. It yields what it needs and receives the answer:

- ``Batch(commands)``: Redis commands to send in one pipelined round trip; the
  reply is the list of their results, in order (``atomic=True``: in MULTI/EXEC,
  so no other client's command runs between them). An error Redis answers for one
  command stands in its place as an exception object (``ok()`` raises it);
  an unreachable Redis raises from the driver.
- ``Compute(fn)``: CPU work between round trips (a verifier's scoring, say); the
  reply is ``fn()``. The sync driver calls it; the async one runs it in the
  process's bounded thread pool, never on the event loop.
- ``Sleep(seconds)``: a pause between polls; the async driver yields the loop.

``run(client, op)`` drives it with a ``redis.Redis``; ``await arun(client, op)``
with a ``redis.asyncio.Redis``. This is how the cache, single flight,
idempotency and the rate limit serve the async query path and the sync callers
(admin, signals, commands, tests) with one body of logic, as psycopg 3 does for
its sync and async connections.
"""

import asyncio
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio

from saascore.pools import in_cpu

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    commands: Sequence[tuple]
    atomic: bool = False


@dataclass(frozen=True)
class Compute:
    fn: Callable[[], Any]


@dataclass(frozen=True)
class Sleep:
    """Wait (a follower polling its leader): ``time.sleep`` or ``asyncio.sleep``."""

    seconds: float


Op = Generator[Batch | Compute | Sleep, Any, T]


def ok(reply: Any) -> Any:
    """A command's reply, or the error Redis answered it with, raised."""
    if isinstance(reply, Exception):
        raise reply
    return reply


def one(*command) -> Batch:
    return Batch([command])


def run(client: redis.Redis, op: Op[T]) -> T:
    """Drive ``op`` with a sync client."""
    try:
        step = next(op)
        while True:
            if isinstance(step, Compute):
                reply = step.fn()
            elif isinstance(step, Sleep):
                reply = time.sleep(step.seconds)  # polling Redis, not synchronising a test
            else:
                pipe = client.pipeline(transaction=step.atomic)
                for command in step.commands:
                    pipe.execute_command(*command)
                reply = pipe.execute(raise_on_error=False)
            step = op.send(reply)
    except StopIteration as done:
        return done.value


async def arun(client: redis.asyncio.Redis, op: Op[T]) -> T:
    """Drive ``op`` with an asyncio client; CPU steps run in the process's CPU pool."""
    try:
        step = next(op)
        while True:
            if isinstance(step, Compute):
                reply = await in_cpu(step.fn)
            elif isinstance(step, Sleep):
                reply = await asyncio.sleep(step.seconds)
            else:
                pipe = client.pipeline(transaction=step.atomic)
                for command in step.commands:
                    pipe.execute_command(*command)
                reply = await pipe.execute(raise_on_error=False)
            step = op.send(reply)
    except StopIteration as done:
        return done.value
