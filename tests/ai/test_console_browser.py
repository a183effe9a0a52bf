"""Operators and tenant admins use the admin console in a real browser."""

import pytest
from django.contrib.auth import get_user_model

from ai.rag.models import Document
from ai.tenant_settings.models import TenantAISettings
from tenants.models import Membership
from tenants.scoping import tenant_scope
from tests.browser import browser_page, screenshot
from tests.factories import auth

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-test-password"


def _login(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


@pytest.fixture
def operator_user():
    return get_user_model().objects.create_superuser("operator", "op@example.com", PASSWORD)


def test_an_operator_changes_a_threshold_and_the_next_query_uses_it(helpdesk, operator_user, live_server, api_client):
    tenant, key = helpdesk()
    with tenant_scope(tenant):
        settings = TenantAISettings.objects.create(tenant=tenant, confidence_floor=0.0)
    question = {"query": "How do I reset my password?"}
    before = api_client.post("/api/v1/ai/query", question, format="json", **auth(key)).json()
    assert before["cache"]["threshold"] == 0.9

    with browser_page() as page:
        _login(page, live_server.url, "operator")
        page.goto(f"{live_server.url}/admin/ai/tenantaisettings/{settings.pk}/change/")
        page.fill("input[name=threshold_standard]", "0.84")
        screenshot(page, "admin-settings-edit")
        page.click("input[name=_continue]")
        page.wait_for_selector("#settings-changes")
        assert "threshold_standard: 0.9 -> 0.84" in page.text_content(".messagelist")
        assert "operator" in page.text_content("#settings-changes")
        screenshot(page, "admin-settings-audited")

    after = api_client.post("/api/v1/ai/query", {**question, "cache": "refresh"}, format="json", **auth(key)).json()
    assert after["cache"]["threshold"] == 0.84


def test_the_try_a_query_panel_shows_a_decision(helpdesk, operator_user, live_server):
    tenant, _ = helpdesk()
    with browser_page() as page:
        _login(page, live_server.url, "operator")
        page.goto(f"{live_server.url}/admin/ai/routerexample/")
        page.click("text=Try a query")
        page.select_option("select[name=tenant]", str(tenant.pk))
        page.fill("textarea[name=query]", "Compare the refund rules of the basic and pro plans")
        page.click("input[type=submit]")
        page.wait_for_selector("#decision-table")
        assert page.text_content("[data-field=intent]").strip() in {"retrieval", "analysis", "chat", "error"}
        confidence = float(page.text_content("[data-field=confidence]"))
        assert 0 < confidence <= 1
        assert page.locator("#neighbours tbody tr").count() >= 3
        screenshot(page, "admin-try-a-query")


def test_a_tenant_admin_cannot_open_another_tenants_objects(helpdesk, live_server):
    mine, _ = helpdesk("mine")
    theirs, _ = helpdesk("theirs")
    with tenant_scope(theirs):
        their_settings = TenantAISettings.objects.create(tenant=theirs)
        their_document = Document.objects.for_tenant(theirs).first()
    user = get_user_model().objects.create_user("tenant-admin", password=PASSWORD, is_staff=True)
    with tenant_scope(mine):
        Membership.objects.create(tenant=mine, user=user, role=Membership.Role.ADMIN)

    with browser_page() as page:
        _login(page, live_server.url, "tenant-admin")
        page.goto(f"{live_server.url}/admin/ai/document/")
        listing = page.text_content("#result_list")
        assert str(mine) in listing and str(theirs) not in listing
        screenshot(page, "admin-tenant-admin-documents")
        response = page.goto(f"{live_server.url}/admin/ai/tenantaisettings/{their_settings.pk}/change/")
        assert response.status == 404  # another tenant's object does not exist for this admin
        screenshot(page, "admin-tenant-admin-refused")
        response = page.goto(f"{live_server.url}/admin/ai/document/{their_document.pk}/change/")
        assert response.status == 404
        response = page.goto(f"{live_server.url}/admin/catalog/modelprice/")
        assert response.status == 403
