"""In a real browser: a tenant admin of one tenant meets 404 at every door of another; a new API key
is shown once and a reload neither shows it again nor makes a second one."""

import pytest
from django.contrib.auth import get_user_model

from ai.rag.models import Document
from ai.tenant_settings.models import TenantAISettings
from billing.models import UsageRecord
from billing.services import Usage, usage_record
from tenants.models import ApiKey, Membership, Tenant
from tenants.scoping import tenant_scope
from tenants.services import membership_set
from tests.browser import browser_page, screenshot
from tests.factories import auth, make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-test-password"


def _tenant_with_usage(slug: str, name: str) -> Tenant:
    tenant = make_tenant(slug=slug, name=name)
    usage_record(tenant=tenant, usage=Usage(request_id="r1", source="llm", model="gpt-4o-mini", input_tokens=900,
                                            output_tokens=100))  # fmt: skip
    usage_record(tenant=tenant, usage=Usage(request_id="r2", source="cache_exact", model="gpt-4o-mini",
                                            saved_input_tokens=900, saved_output_tokens=100,
                                            cached_question=f"What does {name} charge for wires?"))  # fmt: skip
    with tenant_scope(tenant):
        TenantAISettings.objects.create(tenant=tenant)
        Document.objects.create(tenant=tenant, title=f"{name} fees", content="Wires cost 5.")
    return tenant


def test_a_tenant_admin_sees_their_dashboard_and_meets_404_for_another_tenant(live_server):
    alpha, bravo = _tenant_with_usage("alpha-air", "Alpha Air"), _tenant_with_usage("bravo-bank", "Bravo Bank")
    user = get_user_model().objects.create_user("alpha-admin", password=PASSWORD, is_staff=True)
    membership_set(tenant=alpha, user=user, role=Membership.Role.ADMIN)
    with tenant_scope(bravo):
        bravo_settings = TenantAISettings.objects.for_tenant(bravo).get()
        bravo_usage = UsageRecord.objects.for_tenant(bravo).get(request_id="r1")
    base = live_server.url

    with browser_page() as page:
        page.goto(f"{base}/billing/")
        page.fill("input[name=username]", "alpha-admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=spend]")
        assert page.text_content("[data-testid=tenant-name]") == "Alpha Air"
        assert "What does Alpha Air charge for wires?" in page.content() and "Bravo" not in page.content()
        screenshot(page, "access-own-dashboard")

        response = page.goto(f"{base}/billing/?tenant=bravo-bank")
        assert response.status == 404 and "Bravo" not in page.content()
        screenshot(page, "access-other-dashboard-404")
        assert page.request.get(f"{base}/billing/usage.csv?tenant=bravo-bank").status == 404
        assert page.request.get(f"{base}/billing/usage.csv?tenant=alpha-air").status == 200

        page.goto(f"{base}/admin/tenants/tenant/")
        listing = page.text_content("#result_list")
        assert "alpha-air" in listing and "bravo-bank" not in listing
        for url in (
            f"/admin/tenants/tenant/{bravo.pk}/change/",
            f"/admin/ai/tenantaisettings/{bravo_settings.pk}/change/",
            f"/admin/ai/tenantaisettings/{bravo_settings.pk}/history/",
            f"/admin/billing/usagerecord/{bravo_usage.pk}/change/",
        ):
            assert page.goto(f"{base}{url}").status == 404, url
        screenshot(page, "access-other-admin-404")
        page.goto(f"{base}/admin/ai/document/")
        assert "Alpha Air fees" in page.text_content("#result_list") and "Bravo" not in page.content()


def test_a_new_api_key_is_shown_once_and_a_reload_neither_shows_it_nor_makes_another(live_server, api_client):
    tenant = make_tenant(slug="keys-tenant")
    get_user_model().objects.create_superuser("operator", "op@example.com", PASSWORD)
    base = live_server.url

    with browser_page() as page:
        page.goto(f"{base}/admin/login/")
        page.fill("input[name=username]", "operator")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        page.goto(f"{base}/admin/tenants/apikey/add/")
        page.select_option("select[name=tenant]", str(tenant.pk))
        page.fill("input[name=name]", "ci-deploys")
        page.click("input[name=_save]")
        page.wait_for_selector("#new-api-key")
        key = page.input_value("[data-testid=plaintext-key]")
        assert key.startswith(f"sc_{tenant.pk}_") and page.content().count(key) == 1
        screenshot(page, "api-key-shown-once")

        page.reload()
        page.wait_for_selector("#content")
        reloaded_url, reloaded = page.url, page.content()
        page.go_back()
        assert key not in page.content()

    # (no database calls while Playwright's event loop runs in this thread)
    with tenant_scope(tenant):
        created = list(ApiKey.objects.for_tenant(tenant).filter(name="ci-deploys"))
    assert len(created) == 1  # the reload did not post the form again
    assert reloaded_url == f"{base}/admin/tenants/apikey/{created[0].pk}/change/"
    assert key not in reloaded and created[0].display in reloaded
    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 200
