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
- The rate limit is a moving window of 60 s in Redis behind the guard (billing/limiter.py, with
  the key's limits: billing/key_admission.py): exact across processes while Redis
  answers, open (not enforced) while it does not.

Not guaranteed: a tenant without a monthly limit takes no lock and reserves
nothing; its requests are still capped to ``max_request_cost`` each.
"""

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing import limiter
from billing.budgets import MICRODOLLAR, abudget_for, budget_for, in_flight
from billing.key_budget import key_budget_check
from billing.limiter import Limits, Window
from billing.models import SpendCounter, SpendReservation
from billing.services import POSTGRES_UNAVAILABLE, period_of
from saascore.api.errors import ApiError
from saascore.conf import ai_settings
from saascore.pools import in_db
from saascore.redis.guard import RedisGuard
from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.billing")


class AdmissionRefused(ApiError):
    """429 (rate) or 402 (budget), with what refused, the figures and when to retry."""

    def __init__(
        self, status: int, code: str, message: str, details: dict, retry_after: int, headers: dict | None = None
    ) -> None:
        super().__init__(message, details=details, retry_after=retry_after, status=status, code=code, headers=headers)


@dataclass(frozen=True)
class Admission:
    tenant_id: int
    max_cost: Decimal  # the most this request may spend (its generation is capped to it)
    reservation_id: int | None = None


def _tenant_limits(tenant: Tenant, limit: int) -> Limits:
    return Limits(tenant_id=tenant.pk, tenant_rpm=limit)


def _rate_check(guard: RedisGuard | None, tenant: Tenant, limit: int | None, now: float) -> None:
    if not limit or guard is None:
        return
    op = lambda: limiter.admit(_tenant_limits(tenant, limit), uuid.uuid4().hex, now)  # noqa: E731
    raise_refused(guard.run("rate_limit", op, []))


_WHAT = {"requests_per_minute": "requests per minute", "tokens_per_minute": "tokens per minute",
         "parallel_requests": "requests in parallel"}  # fmt: skip


class TooBusyToCount(ApiError):
    status, code = 503, "overloaded"


async def counted_windows(guard: RedisGuard, op) -> list[Window]:
    """The limiter's windows for a request. Redis unreachable: none (nothing refuses, documented);
    but a process too busy to read Redis's reply in time (after retries: each slot is taken by
    request id, so a retry is neither counted twice nor refused by its own slot) refuses the
    request (503) rather than admit it uncounted: limits stay exact."""
    windows = await guard.arun("rate_limit", op, [], reads_only=True, busy=None)
    if windows is None:
        raise TooBusyToCount("This server is too busy to count the request against its limits; retry.", retry_after=1)
    return windows


def raise_refused(windows: list[Window], headers: dict | None = None, api_key_id: int | None = None) -> None:
    """429 for the first window that refused (None did: nothing), naming its limit and scope."""
    window = next((w for w in windows if w.refused), None)
    if window is None:
        return
    retry_after = max(1, math.ceil(window.reset))
    details = {"limit": window.name, "scope": window.scope, window.name: window.limit,
               "retry_after_seconds": retry_after}  # fmt: skip
    if window.scope == "key":
        details["api_key_id"] = api_key_id
    whose = "This API key" if window.scope == "key" else "This tenant"
    message = f"{whose} allows {window.limit} {_WHAT[window.name]}."
    raise AdmissionRefused(429, "rate_limited", message, details, retry_after, headers=headers)


def _next_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def admit(*, tenant: Tenant, guard: RedisGuard | None = None, now: datetime | None = None) -> Admission:
    """Check the rate limit and reserve the request's maximum cost, or raise AdmissionRefused."""
    budget = budget_for(tenant)
    _rate_check(guard, tenant, budget.requests_per_minute, time.time())
    return reserve(tenant=tenant, now=now)


async def areserve(*, tenant: Tenant, api_key: ApiKey | None = None) -> Admission:
    """``reserve`` off the event loop; nothing to do (no SQL) without a spend limit (tenant's or key's)."""
    budget = await abudget_for(tenant)
    if budget.monthly_spend_limit is None and (api_key is None or api_key.budget_usd is None):
        return Admission(tenant.pk, budget.max_request_cost)
    return await in_db(reserve, tenant=tenant, api_key=api_key)


async def arelease(admission: Admission) -> None:
    if admission.reservation_id is not None:
        await in_db(release, admission)


def reserve(*, tenant: Tenant, api_key: ApiKey | None = None, now: datetime | None = None) -> Admission:
    """Reserve the request's maximum cost against the tenant's monthly spend limit and the key's
    budget (billing/key_budget.py), or raise AdmissionRefused (402)."""
    now = now or datetime.now(UTC)
    budget = budget_for(tenant)
    limit, max_cost = budget.monthly_spend_limit, budget.max_request_cost
    key_limited = api_key is not None and api_key.budget_usd is not None
    if limit is None and not key_limited:
        return Admission(tenant.pk, max_cost)
    with tenant_scope(tenant):
        reservations = SpendReservation.objects.for_tenant(tenant)
        if limit is not None:  # the tenant's counter first, then the key's: one lock order
            counter = _locked_counter(tenant.pk, period_of(now))
            reservations.filter(expires_at__lte=now).delete()  # their requests died; they hold nothing
            reserved = in_flight(tenant_id=tenant.pk, now=now)
            if counter.committed + reserved + max_cost > limit:
                resets = _next_month(now)
                _refuse(
                    "The monthly spend limit is reached.",
                    {
                        "limit": "monthly_spend",
                        "scope": "tenant",
                        "limit_usd": str(limit),
                        "spent_usd": str(counter.committed.quantize(MICRODOLLAR)),
                        "in_flight_usd": str(reserved.quantize(MICRODOLLAR)),
                        "resets_at": resets.isoformat().replace("+00:00", "Z"),
                    },
                    resets,
                    now,
                )
        if key_limited:
            refused = key_budget_check(tenant_id=tenant.pk, api_key=api_key, max_cost=max_cost, now=now)
            if refused is not None:
                resets = datetime.fromisoformat(refused["resets_at"].replace("Z", "+00:00"))
                _refuse(f"This API key's {api_key.budget_period} budget is reached.", refused, resets, now)
        expires = now + timedelta(seconds=ai_settings.SPEND_RESERVATION_SECONDS)
        reservation = reservations.create(
            tenant_id=tenant.pk, amount=max_cost, created_at=now, expires_at=expires,
            api_key_id=api_key.pk if api_key else None,
        )  # fmt: skip
    return Admission(tenant.pk, max_cost, reservation.pk)


def monthly_limit_spent(tenant: Tenant, now: datetime | None = None) -> bool:
    """The tenant's monthly spend limit is spent already (read without a lock): a paid step that
    is not the answer itself, as the LLM router, is skipped rather than paid and then refused."""
    limit = budget_for(tenant).monthly_spend_limit
    if limit is None:
        return False
    with tenant_scope(tenant):
        counter = SpendCounter.objects.for_tenant(tenant).filter(period=period_of(now or datetime.now(UTC))).first()
    return counter is not None and counter.committed >= limit


def _refuse(message: str, details: dict, resets: datetime, now: datetime) -> None:
    raise AdmissionRefused(402, "budget_exceeded", message, details, int((resets - now).total_seconds()))


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
