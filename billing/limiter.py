"""A request's rate windows in Redis, all checked and taken in one round trip (one Lua script).

- The tenant's and a key's requests per minute: each a moving window (a sorted set of the last
  60 s of requests, by request id): exact across processes, no burst of twice the limit at a
  minute's edge, and a request counted again (a retry of the same id) takes no second slot.
- A key's tokens per minute: counted from real usage (``tokens_count``, after the answer) in
  per-minute counters, read as a sliding window (this minute plus the share of the last one
  still within 60 s). A request is admitted while tokens are left, so requests admitted
  together may pass the limit by what they use; the next is then refused until it clears.
- A key's parallel requests: a sorted set of the requests in flight, released when each ends
  (``parallel_release``); the claim of a killed worker stops counting after ``LEASE_SECONDS``.

The script checks every window first and takes a slot in each only if all admit, so a refused
request consumes nothing; a request tried again (its first reply unread) is admitted by the slots
it already holds; and it is atomic: limits are exact across processes and hosts.
Measured against the ``limits`` library (docs/decisions.md): 7 round trips for a key with all
three limits there, 1 here. Every key carries its tenant's hash tag: one Redis Cluster slot.
"""

import hashlib
import math
from dataclasses import dataclass

import redis

from saascore.redis import keys
from saascore.redis.ops import Batch, Op, ok, one

LEASE_SECONDS = 900  # a request in flight longer than this (a killed worker's) stops counting
WINDOW_MS = 60_000
NAMES = ("requests_per_minute", "requests_per_minute", "tokens_per_minute", "parallel_requests")
SCOPES = ("tenant", "key", "key", "key")

# KEYS: tenant requests (ZSET), key requests (ZSET), key tokens this minute, last minute,
#       key in flight (ZSET)
# ARGV: now (ms), tenant rpm, key rpm, key tpm, key parallel (0: none), request id, lease (ms),
#       the share of the last minute still inside the window
_SCRIPT = """
local now, request = tonumber(ARGV[1]), ARGV[6]
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])}
local sets = {KEYS[1], KEYS[2], nil, KEYS[5]}  -- the sorted set of each limit but the tokens'
local spans = {60000, 60000, nil, tonumber(ARGV[7])}
local used = {0, 0, 0, 0}
local oldest = {now, now}
for _, i in ipairs({1, 2, 4}) do
  if limits[i] > 0 then  -- drop what left the span; count the rest, less this request's own slot
    redis.call('ZREMRANGEBYSCORE', sets[i], '-inf', now - spans[i])
    used[i] = redis.call('ZCARD', sets[i])
    if redis.call('ZSCORE', sets[i], request) then used[i] = used[i] - 1 end  -- an earlier try's
    if i < 3 then
      local first = redis.call('ZRANGE', sets[i], 0, 0, 'WITHSCORES')
      if first[2] then oldest[i] = tonumber(first[2]) end
    end
  end
end
if limits[3] > 0 then
  local last = tonumber(redis.call('GET', KEYS[4]) or '0')
  used[3] = tonumber(redis.call('GET', KEYS[3]) or '0') + math.floor(last * tonumber(ARGV[8]))
end
local refused = 0
for i = 1, 4 do
  if refused == 0 and limits[i] > 0 and used[i] >= limits[i] then refused = i end
end
if refused == 0 then
  for _, i in ipairs({1, 2, 4}) do
    if limits[i] > 0 then
      redis.call('ZADD', sets[i], 'NX', now, request)
      redis.call('PEXPIRE', sets[i], spans[i])
      used[i] = used[i] + 1
    end
  end
end
return {refused, used[1], used[2], used[3], used[4], tostring(oldest[1]), tostring(oldest[2])}
"""
_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()  # Redis names scripts so


@dataclass(frozen=True)
class Window:
    """Where one limit stands after this request: its size, what is left, seconds to its reset."""

    name: str  # requests_per_minute | tokens_per_minute | parallel_requests
    scope: str  # tenant | key
    limit: int
    remaining: int  # negative: this limit refused the request
    reset: float

    @property
    def refused(self) -> bool:
        return self.remaining < 0


@dataclass(frozen=True)
class Limits:
    """The limits one request is admitted by (0: none of that kind)."""

    tenant_id: int
    key_id: int = 0
    tenant_rpm: int = 0
    key_rpm: int = 0
    key_tpm: int = 0
    key_parallel: int = 0

    @property
    def any(self) -> bool:
        return bool(self.tenant_rpm or self.key_rpm or self.key_tpm or self.key_parallel)


def _minute(now: float) -> int:
    return int(now // 60)


def _keys(limits: Limits, now: float) -> list[str]:
    tenant, key = limits.tenant_id, limits.key_id
    return [
        keys.tenant_requests(tenant),
        keys.key_requests(tenant, key),
        keys.key_tokens(tenant, key, _minute(now)),
        keys.key_tokens(tenant, key, _minute(now) - 1),
        keys.parallel_key(tenant, key),
    ]


def admit(limits: Limits, request_id: str, now: float) -> Op[list[Window]]:
    """Check every window of ``limits`` and, if none refuses, count the request in each (by
    ``request_id``: the same id counted twice takes one slot)."""
    if not request_id:
        raise ValueError("a request is counted by its id")
    names = _keys(limits, now)
    args = [int(now * 1000), limits.tenant_rpm, limits.key_rpm, limits.key_tpm, limits.key_parallel, request_id,
            LEASE_SECONDS * 1000, f"{1 - (now % 60) / 60:.4f}"]  # fmt: skip
    (reply,) = yield one("EVALSHA", _SHA, len(names), *names, *args)
    if isinstance(reply, redis.exceptions.NoScriptError):
        (reply,) = yield one("EVAL", _SCRIPT, len(names), *names, *args)
    refused, *used, tenant_oldest, key_oldest = ok(reply)
    oldest = (float(tenant_oldest), float(key_oldest))
    return _windows(limits, int(refused), [int(n) for n in used], oldest, now)


def _moving_reset(oldest_ms: float, now: float) -> float:
    # The oldest request may have been counted with a later clock than this one's (read before
    # a busy loop got to send it): its window still ends within one window from now.
    return min(WINDOW_MS / 1000, max(0.0, (oldest_ms + WINDOW_MS) / 1000 - now))


def _windows(limits: Limits, refused: int, used: list[int], oldest_ms: tuple[float, float], now: float) -> list[Window]:
    sizes = (limits.tenant_rpm, limits.key_rpm, limits.key_tpm, limits.key_parallel)
    tenant_reset, key_reset = (_moving_reset(oldest, now) for oldest in oldest_ms)
    resets = (tenant_reset, key_reset, 60 - now % 60, 1.0)
    windows = []
    for i, size in enumerate(sizes):
        if size:
            remaining = -1 if refused == i + 1 else max(0, size - used[i])
            windows.append(Window(NAMES[i], SCOPES[i], size, remaining, resets[i]))
    return windows


def tokens_count(*, tenant_id: int, key_id: int, used: int, now: float) -> Op[None]:
    """Add the tokens a request used to its key's minute (whatever is left)."""
    name = keys.key_tokens(tenant_id, key_id, _minute(now))
    added, expiry = yield Batch([("INCRBY", name, used), ("EXPIRE", name, 180)])
    ok(added), ok(expiry)


def parallel_release(*, tenant_id: int, key_id: int, request_id: str) -> Op[None]:
    (reply,) = yield one("ZREM", keys.parallel_key(tenant_id, key_id), request_id)
    ok(reply)


def duration(seconds: float) -> str:
    """OpenAI's form of a reset time: ``1s``, ``6m0s``, ``250ms``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"
