from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIRequestFactory

from billing.models import SpendCounter, TenantBudget
from billing.services import AdmissionRefused, admit, settle
from saascore.api.errors import exception_handler
from tenants.scoping import tenant_scope
from tests.factories import make_tenant

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _budget(tenant, **fields):
    with tenant_scope(tenant):
        return TenantBudget.objects.for_tenant(tenant).create(tenant=tenant, **fields)


@pytest.mark.django_db(transaction=True)
def test_two_hundred_concurrent_requests_cannot_overspend_the_last_dollar():
    tenant = make_tenant()
    max_cost, actual = Decimal("0.06"), Decimal("0.05")
    _budget(tenant, monthly_spend_limit=Decimal("1.00"), max_request_cost=max_cost, requests_per_minute=None)

    def request(_) -> bool:
        try:
            admission = admit(tenant=tenant, now=NOW)
        except AdmissionRefused as refused:
            assert refused.status == 402
            return False
        else:
            settle(admission=admission, cost=actual)
            return True
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=40) as pool:
        admitted = sum(pool.map(request, range(200)))
    with tenant_scope(tenant):
        counter = SpendCounter.objects.for_tenant(tenant).get(period="2026-11")
    assert counter.reserved == 0
    assert counter.committed == actual * admitted
    assert counter.committed <= Decimal("1.00") + max_cost  # at most one request's maximum over
    assert admitted >= 16  # and the budget was really used, not refused wholesale


@pytest.mark.django_db
def test_the_budget_error_says_which_limit_the_figures_and_when_it_resets():
    tenant = make_tenant()
    _budget(tenant, monthly_spend_limit=Decimal("0.10"), max_request_cost=Decimal("0.06"))
    settle(admission=admit(tenant=tenant, now=NOW), cost=Decimal("0.07"))
    with pytest.raises(AdmissionRefused) as refused:
        admit(tenant=tenant, now=NOW)
    error = refused.value
    assert (error.status, error.code) == (402, "budget_exceeded")
    assert error.details == {
        "limit": "monthly_spend",
        "limit_usd": "0.1000",
        "spent_usd": "0.070000",
        "in_flight_usd": "0.000000",
        "resets_at": "2026-12-01T00:00:00Z",
    }
    response = exception_handler(error, {"request": APIRequestFactory().get("/")})
    assert response.status_code == 402 and int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_the_rate_limit_answers_429_with_retry_after():
    tenant = make_tenant()
    _budget(tenant, requests_per_minute=3)
    client = redis.Redis.from_url(settings.REDIS_URL)
    for _ in range(3):
        admit(tenant=tenant, client=client)
    with pytest.raises(AdmissionRefused) as refused:
        admit(tenant=tenant, client=client)
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert refused.value.details["requests_per_minute"] == 3
    assert 1 <= refused.value.retry_after <= 60
    admit(tenant=make_tenant(), client=client)  # another tenant's limit is its own


@pytest.mark.django_db
def test_without_a_spend_limit_nothing_is_reserved_and_free_answers_touch_no_counter():
    tenant = make_tenant()
    with CaptureQueriesContext(connection) as queries:
        admission = admit(tenant=tenant, now=NOW)
        settle(admission=admission, cost=Decimal(0))  # a cache hit
    assert admission.reserved == 0
    assert not [q for q in queries.captured_queries if "billing_spendcounter" in q["sql"]]
    settle(admission=admit(tenant=tenant, now=NOW), cost=Decimal("0.25"))  # an answer that cost something
    settle(admission=admit(tenant=tenant, now=NOW), cost=Decimal("0.5"))
    with tenant_scope(tenant):
        assert SpendCounter.objects.for_tenant(tenant).get(period="2026-11").committed == Decimal("0.75")


@pytest.mark.django_db
def test_passing_the_soft_alert_threshold_is_logged_once_and_shown(caplog, api_client):
    from tests.factories import auth, make_key

    tenant = make_tenant()
    _budget(tenant, monthly_spend_limit=Decimal("1.00"), soft_alert_ratio=Decimal("0.5"), requests_per_minute=None)
    now = datetime.now(UTC)
    settle(admission=admit(tenant=tenant, now=now), cost=Decimal("0.30"))
    assert "passed" not in caplog.text
    settle(admission=admit(tenant=tenant, now=now), cost=Decimal("0.30"))
    settle(admission=admit(tenant=tenant, now=now), cost=Decimal("0.10"))
    assert caplog.text.count("of its monthly spend limit") == 1
    _, key = make_key(tenant)
    budget = api_client.get("/api/v1/billing/summary", **auth(key)).json()["budget"]
    assert budget == {
        "monthly_spend_limit_usd": "1.0000", "spent_usd": "0.700000", "soft_alert": True, "requests_per_minute": None,
    }  # fmt: skip
