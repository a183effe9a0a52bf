"""``Idempotency-Key``: a retried request is answered once and billed once (Stripe's rules).

Guarantees:
- A key belongs to the API key (and end user) that sent it: the same header from
  another API key of the tenant is another request.
- A replay carries the same request: the same key with another body is refused
  (422), whatever happened to the first.
- While the first request runs, a retry is told so (409) instead of getting a
  second answer; once it answered, a retry gets its stored response (24 h).
- Every run of a request is billed: a run that claimed the key in Redis under
  its own request id, so a request run again once Redis has forgotten its key
  (after the 24 h of replay, or a claim left pending by a killed worker) is
  billed again, as it was answered again.
- With Redis unavailable the ledger's id derives from (API key, user, key,
  body): a retry of the same request is billed once, a different body on its own.

Not guaranteed: with Redis unavailable, a retry is answered again (from the
cache or the model), though not billed again.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from django.http import HttpRequest, HttpResponse
from rest_framework import serializers

from saascore.api.errors import ApiError
from saascore.api.lean import json_response
from saascore.redis import keys
from saascore.redis.guard import RedisGuard
from saascore.redis.ops import Op, ok, one

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
    unguarded_ledger_id: str  # the id a run bills under when Redis could not be asked
    claimed: bool  # False: Redis could not be asked; the request runs unguarded

    def ledger_id(self, request_id: str) -> str:
        """What this run bills under: its own id, or (unguarded) the request's derived id."""
        return request_id if self.claimed else self.unguarded_ledger_id


@dataclass(frozen=True)
class Replay:
    body: dict
    headers: dict


class KeyReused(ApiError):
    status, code = 422, "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used with another request body; use a new key for a new request.")


class KeyInFlight(ApiError):
    status, code = 409, "idempotency_in_flight"

    def __init__(self) -> None:
        super().__init__(
            "The first request with this Idempotency-Key has not answered yet; retry shortly.", retry_after=1
        )


def _claim(
    *, tenant_id: int, api_key_id: int, user_id: str | None, key: str, request: dict, ttl: int
) -> tuple[Idempotent, Callable[[], Op[bytes | bool]]]:
    scope = _digest(str(api_key_id), user_id or "", key)
    fingerprint = _digest(json.dumps(request, sort_keys=True, separators=(",", ":"), default=str))
    redis_key = keys.idempotency_key(tenant_id, scope)
    claim = Idempotent(redis_key, fingerprint, "idem-" + _digest(scope, fingerprint), claimed=True)
    pending = json.dumps({"state": "pending", "request": fingerprint})

    def op() -> Op[bytes | bool]:
        (held,) = yield one("EVAL", _CLAIM, 1, redis_key, pending, str(ttl))
        return ok(held) or False

    return claim, op


def _outcome(claim: Idempotent, held: bytes | bool | None) -> Idempotent | Replay:
    if held is None:  # Redis unavailable: run unguarded; the derived ledger id bills a retry once
        return replace(claim, claimed=False)
    if held is False:
        return claim
    record = json.loads(held)
    if record["request"] != claim.fingerprint:
        raise KeyReused
    if record["state"] == "pending":
        raise KeyInFlight
    return Replay(record["body"], record["headers"])


def idempotency_begin(guard: RedisGuard, **request) -> Idempotent | Replay:
    """Claim the key for this request, or replay its answer; raises KeyReused (422) / KeyInFlight (409).

    Keywords: ``tenant_id``, ``api_key_id``, ``user_id``, ``key``, ``request`` (the validated
    body), ``ttl`` (how long a claim lives before a crashed request's key may be used again).
    """
    claim, op = _claim(**request)
    return _outcome(claim, guard.run("idempotency", op, None))


async def aidempotency_begin(guard: RedisGuard, **request) -> Idempotent | Replay:
    claim, op = _claim(**request)
    return _outcome(claim, await guard.arun("idempotency", op, None))


async def aidempotency_finish(guard: RedisGuard, claim: Idempotent, *, body: dict, headers: dict) -> None:
    """Keep the answer for replays."""
    if not claim.claimed:
        return
    record = json.dumps({"state": "done", "request": claim.fingerprint, "body": body, "headers": headers}, default=str)

    def op() -> Op[None]:
        (reply,) = yield one("SET", claim.redis_key, record, "EX", REPLAY_TTL)
        ok(reply)

    await guard.arun("idempotency", op, None)


async def aidempotency_abandon(guard: RedisGuard, claim: Idempotent) -> None:
    """The request did not answer (an error): a retry may run it again."""
    if not claim.claimed:
        return

    def op() -> Op[None]:
        (reply,) = yield one("EVAL", _FORGET_IF_PENDING, 1, claim.redis_key)
        ok(reply)

    await guard.arun("idempotency", op, None)


# A claim whose request died frees the key after this.
IDEMPOTENCY_PENDING_SECONDS = 300


async def aidempotent(
    request: HttpRequest, guard: RedisGuard, *, user_id: str | None, fields: dict,
    answer: Callable[[str], Awaitable[tuple[dict, dict]]],
) -> HttpResponse:  # fmt: skip
    """The JSON response of ``answer(ledger_id)`` (its body and headers), run once per
    ``Idempotency-Key`` when the request has one (``fields``: its validated body)."""
    claim = None
    if (key := request.headers.get("Idempotency-Key")) is not None:
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise serializers.ValidationError({"Idempotency-Key": f"1 to {MAX_KEY_LENGTH} printable characters"})
        claim = await aidempotency_begin(
            guard, tenant_id=request.auth.tenant_id, api_key_id=request.auth.pk, user_id=user_id, key=key,
            request=fields, ttl=IDEMPOTENCY_PENDING_SECONDS,
        )  # fmt: skip
        if isinstance(claim, Replay):
            return json_response(claim.body, headers={**claim.headers, "Idempotent-Replay": "true"})
    try:
        body, headers = await answer(claim.ledger_id(request.request_id) if claim else request.request_id)
    except BaseException:
        if claim:
            await aidempotency_abandon(guard, claim)
        raise
    if claim:
        await aidempotency_finish(guard, claim, body=body, headers=headers)
    return json_response(body, headers=headers)
