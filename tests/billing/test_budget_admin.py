"""Limits and prices are the operator's: a tenant admin reads their budget but cannot change it."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from billing.models import TenantBudget
from catalog.models import ModelPrice
from tenants.models import Membership
from tenants.scoping import tenant_scope
from tenants.services import membership_set
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection

# What a tenant admin would like: no per-request cap, no monthly limit, no rate limit.
UNLIMITED = {"requests_per_minute": "", "monthly_spend_limit": "", "soft_alert_ratio": "0.8", "max_request_cost": "0"}


def _budget(tenant) -> TenantBudget:
    with tenant_scope(tenant):
        return TenantBudget.objects.for_tenant(tenant).get()


@pytest.fixture
def budget():
    tenant = make_tenant()
    with tenant_scope(tenant):
        TenantBudget.objects.create(
            tenant=tenant, requests_per_minute=60, monthly_spend_limit=Decimal(25), max_request_cost=Decimal("0.05")
        )
    return _budget(tenant)


def test_a_tenant_admin_reads_their_budget_but_an_operator_alone_changes_limits_and_prices(client, budget):
    user = get_user_model().objects.create_user("tenant-admin", password="pw", is_staff=True)
    membership_set(tenant=budget.tenant, user=user, role=Membership.Role.OWNER)
    client.force_login(user)
    url = f"/admin/billing/tenantbudget/{budget.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "0.050000" in html and 'name="max_request_cost"' not in html and 'name="_save"' not in html
    assert client.post(url, {**UNLIMITED, "tenant": budget.tenant.pk}).status_code == 403
    assert client.post(f"/admin/billing/tenantbudget/{budget.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/billing/tenantbudget/add/").status_code == 403
    assert client.get("/admin/catalog/modelprice/add/").status_code == 403
    after = _budget(budget.tenant)
    assert (after.requests_per_minute, after.monthly_spend_limit, after.max_request_cost) == (
        60, Decimal(25), Decimal("0.05")
    )  # fmt: skip

    client.force_login(get_user_model().objects.create_superuser("op", password="pw"))
    limits = {**UNLIMITED, "requests_per_minute": "120", "monthly_spend_limit": "50", "max_request_cost": "0.02"}
    response = client.post(f"/admin/billing/tenantbudget/{budget.pk}/change/", {**limits, "tenant": budget.tenant.pk})
    assert response.status_code == 302
    after = _budget(budget.tenant)
    assert (after.requests_per_minute, after.monthly_spend_limit, after.max_request_cost) == (
        120, Decimal(50), Decimal("0.02")
    )  # fmt: skip
    price = {"model": "acme-large", "provider": "openai", "input_per_million": "2", "output_per_million": "8",
             "effective_from_0": "2026-11-28", "effective_from_1": "00:00:00"}  # fmt: skip
    assert client.post("/admin/catalog/modelprice/add/", price).status_code == 302
    assert ModelPrice.objects.filter(model="acme-large").exists()
