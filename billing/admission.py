"""Admission: the rate limit and the monthly spend limit, checked before a request runs.

Guarantees:
- The spend limit holds across processes and hosts: a tenant's admissions are
  serialised by a row lock on its month counter (PostgreSQL, never the cache's
  Redis), and each admitted request reserves ``max_request_cost`` as a row of
  its own (``SpendReservation``). A request's generation is capped to what it
  reserved (ai/llm/generate.py), and its cost reaches the counter with its ledger
  row (billing/services.py), so spend passes the limit by no more than the
  cap's estimation margin.
- A reservation ends when its request does (``release``), or expires after
  ``AI["SPEND_RESERVATION_SECONDS"]`` if its worker was killed first: a dead
  request never holds a tenant's budget past that.
- The rate limit is a per-minute count in Redis behind the guard: exact across
  processes while Redis answers, open (not enforced) while it does not.

Not guaranteed: a tenant without a monthly limit takes no lock and reserves
nothing; its requests are still capped to ``max_request_cost`` each.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.budgets import MICRODOLLAR, abudget_for, budget_for, in_flight
from billing.models import SpendCounter, SpendReservation
from billing.services import POSTGRES_UNAVAILABLE, period_of
from saascore.api.errors import ApiError
from saascore.conf import ai_settings
from saascore.pools import in_db
from saascore.redis import keys
from saascore.redis.guard import RedisGuard
from saascore.redis.ops import Op, ok, one
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.billing")


class AdmissionRefused(ApiError):
    """429 (rate) or 402 (budget), with what refused, the figures and when to retry."""

    def __init__(self, status: int, code: str, message: str, details: dict, retry_after: int) -> None:
        super().__init__(message, details=details, retry_after=retry_after, status=status, code=code)


@dataclass(frozen=True)
class Admission:
    tenant_id: int
    max_cost: Decimal  # the most this request may spend (its generation is capped to it)
    reservation_id: int | None = None


_RATE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _counted(key: str) -> Op[int]:
    (count,) = yield one("EVAL", _RATE, 1, key, 120)
    return int(ok(count))


def _rate_check(guard: RedisGuard | None, tenant: Tenant, limit: int | None, now: float) -> None:
    if not limit or guard is None:
        return
    key = keys.rate_key(tenant.pk, int(now // 60))
    _rate_verdict(guard.run("rate_limit", lambda: _counted(key), None), limit, now)


async def arate_check(*, tenant: Tenant, guard: RedisGuard) -> None:
    """The per-minute rate limit, for the async path (raises AdmissionRefused 429)."""
    limit = (await abudget_for(tenant)).requests_per_minute
    if not limit:
        return
    now = time.time()
    key = keys.rate_key(tenant.pk, int(now // 60))
    _rate_verdict(await guard.arun("rate_limit", lambda: _counted(key), None), limit, now)


def _rate_verdict(count: int | None, limit: int, now: float) -> None:
    if count is None:
        return  # Redis unavailable: not enforced (money is checked in PostgreSQL)
    if count > limit:
        retry_after = max(1, 60 - int(now % 60))
        raise AdmissionRefused(
            429,
            "rate_limited",
            f"More than {limit} requests per minute.",
            {"limit": "requests_per_minute", "requests_per_minute": limit, "retry_after_seconds": retry_after},
            retry_after,
        )


def _next_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def admit(*, tenant: Tenant, guard: RedisGuard | None = None, now: datetime | None = None) -> Admission:
    """Check the rate limit and reserve the request's maximum cost, or raise AdmissionRefused."""
    budget = budget_for(tenant)
    _rate_check(guard, tenant, budget.requests_per_minute, time.time())
    return reserve(tenant=tenant, now=now)


async def areserve(*, tenant: Tenant) -> Admission:
    """``reserve`` off the event loop; nothing to do (no SQL) for a tenant without a spend limit."""
    budget = await abudget_for(tenant)
    if budget.monthly_spend_limit is None:
        return Admission(tenant.pk, budget.max_request_cost)
    return await in_db(reserve, tenant=tenant)


async def arelease(admission: Admission) -> None:
    if admission.reservation_id is not None:
        await in_db(release, admission)


def reserve(*, tenant: Tenant, now: datetime | None = None) -> Admission:
    """Reserve the request's maximum cost against the monthly spend limit, or raise AdmissionRefused (402)."""
    now = now or datetime.now(UTC)
    budget = budget_for(tenant)
    limit, max_cost = budget.monthly_spend_limit, budget.max_request_cost
    if limit is None:
        return Admission(tenant.pk, max_cost)
    with tenant_scope(tenant):
        counter = _locked_counter(tenant.pk, period_of(now))
        reservations = SpendReservation.objects.for_tenant(tenant)
        reservations.filter(expires_at__lte=now).delete()  # their requests died; they hold nothing
        reserved = in_flight(tenant_id=tenant.pk, now=now)
        if counter.committed + reserved + max_cost > limit:
            resets = _next_month(now)
            raise AdmissionRefused(
                402,
                "budget_exceeded",
                "The monthly spend limit is reached.",
                {
                    "limit": "monthly_spend",
                    "limit_usd": str(limit),
                    "spent_usd": str(counter.committed.quantize(MICRODOLLAR)),
                    "in_flight_usd": str(reserved.quantize(MICRODOLLAR)),
                    "resets_at": resets.isoformat().replace("+00:00", "Z"),
                },
                int((resets - now).total_seconds()),
            )
        expires = now + timedelta(seconds=ai_settings.SPEND_RESERVATION_SECONDS)
        reservation = reservations.create(tenant_id=tenant.pk, amount=max_cost, created_at=now, expires_at=expires)
    return Admission(tenant.pk, max_cost, reservation.pk)


def _locked_counter(tenant_id: int, period: str) -> SpendCounter:
    """The tenant's spend counter of the period, created if missing, locked until the transaction ends."""
    SpendCounter.objects.for_tenant(tenant_id).bulk_create(
        [SpendCounter(tenant_id=tenant_id, period=period)], ignore_conflicts=True
    )
    return SpendCounter.objects.for_tenant(tenant_id).select_for_update().get(period=period)


def release(admission: Admission) -> None:
    """The request is over: its reservation ends. (Its cost went to the counter with its ledger row.)

    If PostgreSQL cannot be reached, the reservation is left to expire: the
    answer the client already has must not fail for it.
    """
    if admission.reservation_id is None:
        return
    try:
        with tenant_scope(admission.tenant_id):
            SpendReservation.objects.for_tenant(admission.tenant_id).filter(pk=admission.reservation_id).delete()
    except POSTGRES_UNAVAILABLE as exc:
        logger.warning("reservation %s left to expire, PostgreSQL unavailable: %s", admission.reservation_id, exc)
