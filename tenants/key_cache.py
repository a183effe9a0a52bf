"""API keys verified without PostgreSQL in steady state, and revoked within a second.

1. In process: a key verified less than ``KEY_LOCAL_SECONDS`` (1 s) ago is trusted.
2. In Redis: ``{t:<tenant>}:key:<sha256 of the key>`` holds a verified key's record
   for ``KEY_RECORD_SECONDS``, valid only while the tenant's cache generation is
   the one read *before* the record was made from PostgreSQL.
3. Else PostgreSQL (``api_key_verify``, under the tenant's row-level security),
   off the event loop; the record is written for the next process.

A revocation, an expiry or limits change, a deleted key or a deactivated tenant moves the
tenant's generation after its transaction commits, durably (ai/signals.py,
ai/cache/invalidation.py): every Redis record of the tenant's keys stops counting
at once, and every process's in-process entry within a second. If Redis misses
that move, the pending invalidation is applied within a few seconds by a sweep.
A verifier that read PostgreSQL before a revocation and writes its record after
writes the old generation, which no longer counts.

Unknown keys are remembered for a second too (``NOT_A_KEY``), so a flood of bad
keys costs PostgreSQL one lookup per key per second per process, not one per
request. Only digests are stored, never a key.
"""

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.utils import timezone

from saascore.pools import in_background, in_db
from saascore.redis import keys
from saascore.redis.guard import RedisGuard
from saascore.redis.ops import Batch, Op, ok, one
from tenants.models import ApiKey, Tenant
from tenants.services import LAST_USED_RESOLUTION, api_key_touch, api_key_verify, parse_key

KEY_LOCAL_SECONDS = 1.0
KEY_RECORD_SECONDS = 300
MAX_LOCAL = 10_000


@dataclass(frozen=True)
class _Known:
    api_key: ApiKey | None  # None: not a usable key
    at: float


@dataclass(frozen=True)
class _Verifying:
    task: asyncio.Task
    at: float


_local: "OrderedDict[str, _Known]" = OrderedDict()
_verifying: dict[str, _Verifying] = {}
_touched: dict[int, float] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _remember(digest: str, api_key: ApiKey | None, at: float) -> ApiKey | None:
    _local[digest] = _Known(api_key, at)
    _local.move_to_end(digest)
    while len(_local) > MAX_LOCAL:
        _local.popitem(last=False)
    return api_key


def forget_tenant(tenant_id: int) -> None:
    """This process trusts none of the tenant's keys from memory (a key of it changed here)."""
    for digest, known in list(_local.items()):
        if known.api_key is not None and known.api_key.tenant_id == tenant_id:
            _local.pop(digest, None)


def _record(api_key: ApiKey, generation: int) -> str:
    tenant = api_key.tenant
    return json.dumps(
        {
            "k": api_key.pk, "n": api_key.name, "p": api_key.prefix,
            "e": api_key.expires_at.isoformat() if api_key.expires_at else None,
            "t": tenant.pk, "s": tenant.slug, "tn": tenant.name, "pl": tenant.plan, "g": generation,
            "l": api_key.limits_record(),
        }
    )  # fmt: skip


def _from_record(raw: bytes) -> tuple[ApiKey, int]:
    data = json.loads(raw)
    tenant = Tenant(pk=data["t"], slug=data["s"], name=data["tn"], plan=data["pl"], active=True)
    expires = datetime.fromisoformat(data["e"]) if data["e"] else None
    api_key = ApiKey(pk=data["k"], tenant=tenant, name=data["n"], prefix=data["p"], expires_at=expires)
    return api_key.with_limits(data.get("l", {})), int(data["g"])


def _lookup(tenant_id: int, digest: str) -> Op[tuple[bytes | None, bytes | None]]:
    record, generation = yield Batch(
        [("GET", keys.api_key_record(tenant_id, digest)), ("GET", keys.generation_key(tenant_id))]
    )
    return ok(record), ok(generation)


def _write(tenant_id: int, digest: str, record: str) -> Op[None]:
    (reply,) = yield one("SET", keys.api_key_record(tenant_id, digest), record, "EX", KEY_RECORD_SECONDS)
    ok(reply)


async def aapi_key_verify(*, key: str, guard: RedisGuard) -> ApiKey | None:
    """The usable key (with its tenant) that ``key`` is, or None; no SQL in steady state.

    Requests that find the key's entry stale share one verification, if it began less than
    ``KEY_LOCAL_SECONDS`` ago (what the entry it makes is trusted for): a burst on one key
    costs Redis one lookup per process and second, not one per request.
    """
    parsed = parse_key(key)
    if parsed is None:
        return None
    digest = _digest(key)
    now = time.monotonic()
    known = _local.get(digest)
    if known is not None and now - known.at < KEY_LOCAL_SECONDS:
        return _usable(known.api_key)
    loop = asyncio.get_running_loop()
    running = _verifying.get(digest)
    if running is None or now - running.at >= KEY_LOCAL_SECONDS or running.task.get_loop() is not loop:
        running = _Verifying(loop.create_task(_verify(key, parsed[0], digest, guard, now)), now)
        _verifying[digest] = running
        running.task.add_done_callback(partial(_verified, digest, running))
    return _usable(await asyncio.shield(running.task))


async def _verify(key: str, tenant_id: int, digest: str, guard: RedisGuard, started: float) -> ApiKey | None:
    """Redis's record of the key, else PostgreSQL's answer (then recorded in Redis). The entry
    counts from ``started``: a revocation after that is seen a second after it, not later."""
    record, generation = await guard.arun("api_key", lambda: _lookup(tenant_id, digest), (None, None), reads_only=True)
    if record is not None and generation is not None:
        api_key, made_at = _from_record(record)
        if made_at == int(generation):
            return _remember(digest, api_key, started)
    api_key = await in_db(api_key_verify, key=key)
    _remember(digest, api_key, started)
    if api_key is not None and generation is not None:
        await guard.arun("api_key", lambda: _write(tenant_id, digest, _record(api_key, int(generation))), None)
    return api_key


def _verified(digest: str, running: "_Verifying", task: asyncio.Task) -> None:
    if _verifying.get(digest) is running:
        del _verifying[digest]
    if not task.cancelled():
        task.exception()  # retrieved: a waiter that was cancelled does not leave it unreported


def _usable(api_key: ApiKey | None) -> ApiKey | None:
    if api_key is None or not api_key.is_usable():
        return None
    now = time.monotonic()
    if now - _touched.get(api_key.pk, 0.0) >= LAST_USED_RESOLUTION.total_seconds():
        _touched[api_key.pk] = now
        when = timezone.now()
        # Off the request: a hint for people, written at most once a minute per key and process.
        in_background(in_db(api_key_touch, tenant_id=api_key.tenant_id, key_id=api_key.pk, when=when))
    return api_key
