"""A tenant member logs in with a real browser and checks the dashboard's figures against the ledger."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum

from billing.models import UsageRecord
from tenants.scoping import tenant_scope
from tenants.services import membership_set
from tests.browser import browser_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_member_logs_in_and_sees_the_ledger_figures(live_server, ledger):
    tenant = ledger()
    other = ledger()
    user = get_user_model().objects.create_user("dana", password="a-long-test-password")
    membership_set(tenant=tenant, user=user, role="viewer")
    with tenant_scope(tenant):
        sums = UsageRecord.objects.for_tenant(tenant).aggregate(cost=Sum("cost"), saved=Sum("saved"), n=Count("id"))

    for width, name in [(1280, "billing-dashboard"), (390, "billing-dashboard-phone")]:
        with browser_page(width=width) as page:
            page.goto(f"{live_server.url}/billing/?start=2026-11-01&end=2026-11-30")
            assert "/accounts/login/" in page.url
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", "a-long-test-password")
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=spend]")
            assert page.text_content("[data-testid=tenant-name]") == tenant.name
            assert Decimal(page.text_content("[data-testid=spend]").strip("$")) == round(sums["cost"], 6)
            assert Decimal(page.text_content("[data-testid=saved]").strip("$")) == round(sums["saved"], 6)
            assert page.text_content("[data-testid=requests]") == str(sums["n"])
            assert page.text_content("[data-testid=hit-ratio]") == "40%"  # 2 hits of 5 answered
            assert page.locator("svg.chart").count() == 3
            shot = screenshot(page, name)
            assert shot.stat().st_size > 10_000

            # Another tenant's dashboard does not exist for this member.
            response = page.goto(f"{live_server.url}/billing/?tenant={other.slug}")
            assert response.status == 404
