from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import ApiKey
from tenants.scoping import tenant_scope
from tenants.services import api_key_revoke
from tests.factories import auth, make_key, make_tenant

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def test_bearer_and_x_api_key_both_authenticate(api_client):
    tenant = make_tenant(slug="acme")
    _, key = make_key(tenant)
    assert api_client.get("/api/v1/tenant", **auth(key)).json()["slug"] == "acme"
    assert api_client.get("/api/v1/tenant", HTTP_X_API_KEY=key).json()["slug"] == "acme"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer sc_1_not-a-real-key"},
        {"HTTP_AUTHORIZATION": "Bearer garbage"},
        {"HTTP_X_API_KEY": "sc_99999999_" + "x" * 43},
        {"HTTP_AUTHORIZATION": "Bearer " + "sc_1_" + "y" * 500},
        # str.isdigit() accepts a superscript two, int() does not: this was a 500
        {"HTTP_AUTHORIZATION": "Bearer sc_\u00b2_abcdefgh"},
        # PostgreSQL refuses a NUL in a string: this was a 500
        {"HTTP_X_API_KEY": "sc_1_abc\x00defgh"},
    ],
)
def test_missing_or_wrong_keys_get_401_json(api_client, headers):
    make_key(make_tenant())
    response = api_client.get("/api/v1/tenant", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _error(response)["code"] in {"not_authenticated", "authentication_failed"}


def test_a_key_with_the_right_prefix_but_wrong_secret_fails(api_client):
    _, key = make_key(make_tenant())
    tampered = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert api_client.get("/api/v1/tenant", **auth(tampered)).status_code == 401


def test_revoked_key_stops_working_at_once(api_client):
    tenant = make_tenant()
    api_key, key = make_key(tenant)
    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 200
    api_key_revoke(tenant=tenant, key_id=api_key.pk)
    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 401


def test_expired_key_gets_401(api_client):
    tenant = make_tenant()
    _, live = make_key(tenant, expires_at=timezone.now() + timedelta(hours=1))
    _, expired = make_key(tenant, expires_at=timezone.now() - timedelta(seconds=1))
    assert api_client.get("/api/v1/tenant", **auth(live)).status_code == 200
    assert api_client.get("/api/v1/tenant", **auth(expired)).status_code == 401


def test_inactive_tenant_keys_get_401(api_client):
    tenant = make_tenant()
    _, key = make_key(tenant)
    tenant.active = False
    tenant.save()
    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 401


def test_only_the_hash_is_stored_and_last_use_is_recorded(api_client):
    tenant = make_tenant()
    api_key, key = make_key(tenant)
    api_client.get("/api/v1/tenant", **auth(key))
    with tenant_scope(tenant):
        stored = ApiKey.objects.for_tenant(tenant).get(pk=api_key.pk)
    assert key not in stored.hashed_key and stored.hashed_key != key
    assert stored.last_used_at is not None


def test_keys_list_shows_the_tenants_own_keys_without_secrets(api_client):
    a, b = make_tenant(), make_tenant()
    key_a, plain_a = make_key(a, name="first")
    make_key(b, name="other")
    body = api_client.get("/api/v1/keys", **auth(plain_a)).json()
    assert [k["id"] for k in body] == [key_a.pk]
    assert plain_a not in str(body)


def test_a_key_can_revoke_itself_via_the_api(api_client):
    api_key, key = make_key(make_tenant())
    response = api_client.delete(f"/api/v1/keys/{api_key.pk}", **auth(key))
    assert response.status_code == 200 and response.json()["revoked"] is True
    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 401


def test_rename_validates_its_input(api_client):
    api_key, key = make_key(make_tenant())
    url = f"/api/v1/keys/{api_key.pk}"
    assert api_client.patch(url, {"name": "ci"}, format="json", **auth(key)).json()["name"] == "ci"
    response = api_client.patch(url, {"name": ["not", "a", "string"]}, format="json", **auth(key))
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid" and "name" in error["details"]
    response = api_client.patch(url, {"name": "x" * 101}, format="json", **auth(key))
    assert response.status_code == 400


class TestCrossTenant:
    """A key of tenant A never reads or changes B's data: B's objects are 404 to A."""

    def test_reading_another_tenants_key_is_404(self, api_client):
        a, b = make_tenant(), make_tenant()
        _, plain_a = make_key(a)
        key_b, _ = make_key(b)
        response = api_client.get(f"/api/v1/keys/{key_b.pk}", **auth(plain_a))
        assert response.status_code == 404
        assert _error(response)["code"] == "not_found"

    def test_changing_another_tenants_key_is_404_and_changes_nothing(self, api_client):
        a, b = make_tenant(), make_tenant()
        _, plain_a = make_key(a)
        key_b, plain_b = make_key(b, name="b-key")
        assert api_client.delete(f"/api/v1/keys/{key_b.pk}", **auth(plain_a)).status_code == 404
        patch = api_client.patch(f"/api/v1/keys/{key_b.pk}", {"name": "pwned"}, format="json", **auth(plain_a))
        assert patch.status_code == 404
        # B's key still works and kept its name
        assert api_client.get("/api/v1/tenant", **auth(plain_b)).status_code == 200
        assert api_client.get(f"/api/v1/keys/{key_b.pk}", **auth(plain_b)).json()["name"] == "b-key"

    def test_a_key_cannot_claim_another_tenant_by_editing_its_id(self, api_client):
        a, b = make_tenant(), make_tenant()
        _, plain_a = make_key(a)
        forged = plain_a.replace(f"sc_{a.pk}_", f"sc_{b.pk}_", 1)
        assert api_client.get("/api/v1/tenant", **auth(forged)).status_code == 401
