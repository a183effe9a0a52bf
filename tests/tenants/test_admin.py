import pytest
from django.contrib.auth import get_user_model

from tests.factories import make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw")
    client.force_login(user)
    return client


def test_staff_see_every_tenants_keys(staff_client):
    make_key(make_tenant(slug="alpha"), name="alpha-key")
    make_key(make_tenant(slug="beta"), name="beta-key")
    page = staff_client.get("/admin/tenants/apikey/").content.decode()
    assert "alpha-key" in page and "beta-key" in page


@pytest.mark.parametrize(
    "url",
    [
        "/admin/ai/tenantaisettings/", "/admin/ai/routerexample/", "/admin/ai/routerule/", "/admin/ai/document/",
        "/admin/catalog/modelprice/", "/admin/billing/usagerecord/", "/admin/billing/tenantbudget/",
        "/admin/ai/routerexample/add/", "/admin/ai/tenantaisettings/add/",
    ],
)  # fmt: skip
def test_operator_pages_render(staff_client, url):
    assert staff_client.get(url).status_code == 200


def test_invalid_thresholds_are_refused_in_the_admin(staff_client):
    tenant = make_tenant()
    form = {
        "tenant": tenant.pk, "cache_enabled": "on", "cache_scope": "tenant", "cache_ttl_seconds": 3600,
        "threshold_standard": 0.97, "threshold_strict": 0.9, "confidence_floor": 0.8, "router_mode": "local",
        "router_llm_model": "gpt-4o-mini", "cascade_threshold": 0.6, "chunk_tokens": 200, "chunk_overlap": 40,
    }  # fmt: skip
    response = staff_client.post("/admin/ai/tenantaisettings/add/", form)
    assert response.status_code == 200 and "0 &lt; standard &lt;= strict &lt;= 1" in response.content.decode()
    form["threshold_standard"] = 0.88
    assert staff_client.post("/admin/ai/tenantaisettings/add/", form).status_code == 302
