"""Single flight: of concurrent identical misses in one scope, one calls upstream.

The first caller takes a short-lived Redis lock (``SET NX PX``) and becomes the
leader; the others wait for the leader's answer to appear in the exact tier, and
go upstream themselves if the lock disappears without an answer (the leader
failed, or the answer was not cacheable) or the wait runs out. Works across
threads, workers and hosts, because the lock lives in Redis.
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

POLL_INTERVAL = 0.01


@dataclass
class Flight:
    """A miss in flight. ``leader`` calls upstream; the others ``wait()``."""

    client: redis.Redis | None
    lock_key: str
    leader: bool
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    def release(self) -> None:
        if self.leader and self.client is not None:
            try:
                self.client.eval(_RELEASE, 1, self.lock_key, self.token)
            except redis.RedisError:
                pass  # the lock expires on its own

    def wait(self, fetch: Callable[[], object | None], timeout: float) -> object | None:
        """Poll ``fetch`` (the exact tier) until the leader's answer is there.

        Returns it, or None when the leader gave up or ``timeout`` passed.
        """
        if self.client is None:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = fetch()
            if found is not None:
                return found
            try:
                if not self.client.exists(self.lock_key):
                    return fetch()  # the leader finished: its answer, or nothing
            except redis.RedisError:
                return None
            time.sleep(POLL_INTERVAL)
        return None


def take_off(client: redis.Redis | None, lock_key: str, lock_ttl: float) -> Flight:
    """Become the leader of ``lock_key``, or a follower of the current leader.

    Without Redis (``client`` None or failing) everyone leads: the cache fails open.
    """
    flight = Flight(client=client, lock_key=lock_key, leader=True)
    if client is None:
        return flight
    try:
        flight.leader = bool(client.set(lock_key, flight.token, nx=True, px=int(lock_ttl * 1000)))
    except redis.RedisError:
        flight.client = None
    return flight
