"""``Idempotency-Key``: a retried request is answered once and billed once (Stripe's rules).

Guarantees:
- A key belongs to the API key (and end user) that sent it: the same header from
  another API key of the tenant is another request.
- A replay carries the same request: the same key with another body is refused
  (422), whatever happened to the first.
- While the first request runs, a retry is told so (409) instead of getting a
  second answer; once it answered, a retry gets its stored response (24 h).
- The ledger's id for the request derives from (API key, user, key, body): even
  with Redis unavailable, a retry of the same request is billed once and a
  different body is billed on its own.

Not guaranteed: with Redis unavailable, a retry is answered again (from the
cache or the model), though not billed again.
"""

import hashlib
import json
from dataclasses import dataclass

from saascore.redis import keys
from saascore.redis.guard import RedisGuard

REPLAY_TTL = 24 * 3600
MAX_KEY_LENGTH = 255

# Claim the key, or return what it holds.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
_FORGET_IF_PENDING = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['state'] == 'pending' then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Idempotent:
    """An idempotent request that this caller now runs (it claimed the key)."""

    redis_key: str
    fingerprint: str
    ledger_id: str
    claimed: bool  # False: Redis could not be asked; the request runs unguarded


@dataclass(frozen=True)
class Replay:
    body: dict
    headers: dict


class KeyReused(Exception):
    """The key came with another body (422)."""


class KeyInFlight(Exception):
    """The first request with this key has not answered yet (409)."""


def idempotency_begin(
    guard: RedisGuard, *, tenant_id: int, api_key_id: int, user_id: str | None, key: str, request: dict, ttl: int
) -> Idempotent | Replay:
    """Claim ``key`` for this request, or replay its answer; raises KeyReused / KeyInFlight.

    ``ttl``: how long a claim lives before a crashed request's key may be used again.
    """
    scope = _digest(str(api_key_id), user_id or "", key)
    fingerprint = _digest(json.dumps(request, sort_keys=True, separators=(",", ":"), default=str))
    redis_key = keys.idempotency_key(tenant_id, scope)
    claim = Idempotent(redis_key, fingerprint, "idem-" + _digest(scope, fingerprint), claimed=True)
    pending = json.dumps({"state": "pending", "request": fingerprint})
    held = guard.call("idempotency", lambda client: client.eval(_CLAIM, 1, redis_key, pending, str(ttl)) or False, None)
    if held is None:
        return Idempotent(redis_key, fingerprint, claim.ledger_id, claimed=False)
    if held is False:
        return claim
    record = json.loads(held)
    if record["request"] != fingerprint:
        raise KeyReused
    if record["state"] == "pending":
        raise KeyInFlight
    return Replay(record["body"], record["headers"])


def idempotency_finish(guard: RedisGuard, claim: Idempotent, *, body: dict, headers: dict) -> None:
    """Keep the answer for replays."""
    if not claim.claimed:
        return
    record = json.dumps({"state": "done", "request": claim.fingerprint, "body": body, "headers": headers}, default=str)
    guard.call("idempotency", lambda client: client.set(claim.redis_key, record, ex=REPLAY_TTL), None)


def idempotency_abandon(guard: RedisGuard, claim: Idempotent) -> None:
    """The request did not answer (an error): a retry may run it again."""
    if claim.claimed:
        guard.call("idempotency", lambda client: client.eval(_FORGET_IF_PENDING, 1, claim.redis_key), None)
