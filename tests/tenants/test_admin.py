import pytest
from django.contrib.auth import get_user_model

from tenants.models import ApiKey
from tenants.scoping import tenant_scope
from tests.factories import make_key, make_tenant

pytestmark = pytest.mark.django_db


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


def test_creating_a_key_in_the_admin_shows_it_once_and_stores_its_hash(staff_client):
    tenant = make_tenant(slug="gamma")
    response = staff_client.post("/admin/tenants/apikey/add/", {"tenant": tenant.pk, "name": "from-admin"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "not shown again" in str(m)]
    assert len(shown) == 1
    key = shown[0].rsplit(" ", 1)[-1]
    with tenant_scope(tenant):
        stored = ApiKey.objects.for_tenant(tenant).get(name="from-admin")
    assert stored.hashed_key != key and key.startswith(f"sc_{tenant.pk}_")
