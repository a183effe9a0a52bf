import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIRequestFactory

from ai.cache import get_cache
from billing import limiter
from billing.admission import AdmissionRefused, admit, release
from billing.limiter import Limits
from billing.models import SpendCounter, SpendReservation, TenantBudget
from billing.services import Usage, usage_record
from saascore.api.errors import exception_handler
from tenants.scoping import tenant_scope
from tests.factories import make_tenant

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _budget(tenant, **fields):
    with tenant_scope(tenant):
        return TenantBudget.objects.for_tenant(tenant).create(tenant=tenant, **fields)


def _spend(tenant, request_id: str, cost: Decimal, when: datetime = NOW) -> None:
    """A paid ledger row costing ``cost`` (gpt-4o at $5 per million input tokens)."""
    tokens = int(cost * 1_000_000 / 5)
    usage_record(tenant=tenant, usage=Usage(request_id=request_id, source="llm", model="gpt-4o", input_tokens=tokens),
                 when=when)  # fmt: skip


def _counter(tenant, period="2026-11") -> SpendCounter:
    with tenant_scope(tenant):
        return SpendCounter.objects.for_tenant(tenant).get(period=period)


def _reservations(tenant) -> int:
    with tenant_scope(tenant):
        return SpendReservation.objects.for_tenant(tenant).count()


@pytest.mark.django_db(transaction=True)
def test_two_hundred_concurrent_requests_cannot_overspend_the_last_dollar():
    tenant = make_tenant()
    max_cost, actual = Decimal("0.06"), Decimal("0.05")
    _budget(tenant, monthly_spend_limit=Decimal("1.00"), max_request_cost=max_cost, requests_per_minute=None)

    def request(n) -> bool:
        try:
            admission = admit(tenant=tenant, now=NOW)
        except AdmissionRefused as refused:
            assert refused.status == 402
            return False
        else:
            _spend(tenant, f"r{n}", actual)
            release(admission)
            return True
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=40) as pool:
        admitted = sum(pool.map(request, range(200)))
    counter = _counter(tenant)
    assert _reservations(tenant) == 0
    assert counter.committed == actual * admitted
    assert counter.committed <= Decimal("1.00")  # each request's cost fits its reservation: no overspend
    assert admitted >= 16  # and the budget was really used, not refused wholesale


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_reservation_expires_instead_of_holding_the_budget(settings):
    """A worker killed mid-request never releases: its reservation stops counting once it expires."""
    settings.AI = {"SPEND_RESERVATION_SECONDS": 300}
    tenant = make_tenant()
    _budget(tenant, monthly_spend_limit=Decimal("0.10"), max_request_cost=Decimal("0.06"), requests_per_minute=None)
    admit(tenant=tenant, now=NOW)  # ...and the worker dies: no release
    with pytest.raises(AdmissionRefused):
        admit(tenant=tenant, now=NOW + timedelta(seconds=299))
    later = admit(tenant=tenant, now=NOW + timedelta(seconds=300))
    assert _reservations(tenant) == 1  # the dead one is gone, the new one holds
    release(later)
    assert _reservations(tenant) == 0


@pytest.mark.django_db
def test_the_budget_error_says_which_limit_the_figures_and_when_it_resets():
    tenant = make_tenant()
    _budget(tenant, monthly_spend_limit=Decimal("0.10"), max_request_cost=Decimal("0.05"))
    release(admit(tenant=tenant, now=NOW))
    _spend(tenant, "r1", Decimal("0.04"))
    admit(tenant=tenant, now=NOW)  # in flight
    with pytest.raises(AdmissionRefused) as refused:
        admit(tenant=tenant, now=NOW)
    error = refused.value
    assert (error.status, error.code) == (402, "budget_exceeded")
    assert error.details == {
        "limit": "monthly_spend",
        "scope": "tenant",
        "limit_usd": "0.1000",
        "spent_usd": "0.040000",
        "in_flight_usd": "0.050000",
        "resets_at": "2026-12-01T00:00:00Z",
    }
    response = exception_handler(error, {"request": APIRequestFactory().get("/")})
    assert response.status_code == 402 and int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_the_rate_limit_answers_429_with_retry_after():
    tenant = make_tenant()
    _budget(tenant, requests_per_minute=3)
    guard = get_cache().guard
    for _ in range(3):
        admit(tenant=tenant, guard=guard)
    with pytest.raises(AdmissionRefused) as refused:
        admit(tenant=tenant, guard=guard)
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert refused.value.details["requests_per_minute"] == 3
    assert 1 <= refused.value.retry_after <= 60
    admit(tenant=make_tenant(), guard=guard)  # another tenant's limit is its own
    assert settings.REDIS_URL


@pytest.mark.django_db
def test_without_a_spend_limit_admission_touches_no_counter_and_paid_rows_count_once():
    tenant = make_tenant()
    with CaptureQueriesContext(connection) as queries:
        admission = admit(tenant=tenant, now=NOW)
        release(admission)
    assert admission.reservation_id is None and admission.max_cost == Decimal("0.06")
    assert not [q for q in queries.captured_queries if "billing_spend" in q["sql"]]
    _spend(tenant, "r1", Decimal("0.25"))
    _spend(tenant, "r2", Decimal("0.5"))
    _spend(tenant, "r2", Decimal("0.5"))  # a replay of the same request: the ledger and counter take it once
    assert _counter(tenant).committed == Decimal("0.75")


@pytest.mark.django_db
def test_passing_the_soft_alert_threshold_is_logged_once_and_shown(caplog, api_client):
    from tests.factories import auth, make_key

    tenant = make_tenant()
    _budget(tenant, monthly_spend_limit=Decimal("1.00"), soft_alert_ratio=Decimal("0.5"), requests_per_minute=None)
    now = datetime.now(UTC)
    _spend(tenant, "r1", Decimal("0.30"), now)
    assert "passed" not in caplog.text
    _spend(tenant, "r2", Decimal("0.30"), now)
    _spend(tenant, "r3", Decimal("0.10"), now)
    assert caplog.text.count("of its monthly spend limit") == 1
    _, key = make_key(tenant)
    budget = api_client.get("/api/v1/billing/summary", **auth(key)).json()["budget"]
    assert budget == {
        "monthly_spend_limit_usd": "1.0000", "spent_usd": "0.700000", "in_flight_usd": "0.000000",
        "soft_alert": True, "requests_per_minute": None, "max_request_cost_usd": "0.060000",
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_keys_window_resets_within_a_minute_when_an_older_request_read_the_clock_later():
    """Two workers: one reads the clock, its loop is busy, and another request with a later
    clock is counted first. The first is refused with a reset of at most the window (60 s)."""
    limits = Limits(tenant_id=make_tenant().pk, key_id=1, key_rpm=1)
    guard, now = get_cache().guard, time.time()
    counted = guard.run("rate_limit", lambda: limiter.admit(limits, "later-clock", now + 0.5), [])
    refused = guard.run("rate_limit", lambda: limiter.admit(limits, "earlier-clock", now), [])
    assert [w.remaining for w in counted] == [0]
    (window,) = refused
    assert window.remaining == -1 and 0 < window.reset <= 60


@pytest.mark.django_db(transaction=True)
def test_a_tenants_requests_are_a_moving_window_with_no_second_burst_at_a_minutes_edge():
    """Counted per clock minute, a tenant allowed 1 request could send 2 within 0.2 s across a
    minute's edge (and a test that sent them there flaked). The window is the last 60 s."""
    limits = Limits(tenant_id=make_tenant().pk, tenant_rpm=1)
    guard, edge = get_cache().guard, (time.time() // 60 + 1) * 60
    admit_at = lambda request_id, at: guard.run("rate_limit", lambda: limiter.admit(limits, request_id, at), [])  # noqa: E731
    (first,) = admit_at("before-the-edge", edge - 0.1)
    (second,) = admit_at("after-the-edge", edge + 0.1)
    assert (first.remaining, second.remaining) == (0, -1)
    assert (second.name, second.scope) == ("requests_per_minute", "tenant") and 59 < second.reset <= 60
    (again,) = admit_at("before-the-edge", edge + 0.2)  # its first reply unread: tried again
    assert again.remaining == 0, "a request tried again is admitted by its own slot, and counted once"
    (later,) = admit_at("a-minute-later", edge - 0.1 + 60)
    assert later.remaining == 0
