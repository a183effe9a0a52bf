"""A key created in the admin is shown once, on the answer to its POST, and stored nowhere (item 14)."""

import logging
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django_redis import get_redis_connection

from tenants.models import ApiKey, Membership, Tenant
from tenants.scoping import tenant_scope
from tenants.services import membership_set
from tests.factories import auth, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection
ADD = "/admin/tenants/apikey/add/"


def _create_key(client, tenant: Tenant, name: str = "from-admin") -> tuple[str, str]:
    """POST the add form; the page it answers with, and the one key it shows."""
    response = client.post(ADD, {"tenant": tenant.pk, "name": name})
    assert response.status_code == 200, response.status_code
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    keys = re.findall(rf"sc_{tenant.pk}_[A-Za-z0-9_-]{{40,}}", page)
    assert len(keys) == 1, keys  # shown once
    assert "Copy this key now" in page
    return page, keys[0]


def _tables_holding(text: str, tenant: Tenant) -> list[str]:
    """Every table with a row whose text contains ``text`` (the tenant's rows and every shared table)."""
    found = []
    with tenant_scope(tenant), connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{text}%"])
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def _redis_values_holding(text: str) -> list[bytes]:
    client = get_redis_connection("default")
    readers = {b"string": lambda k: [client.get(k)], b"hash": lambda k: list(client.hgetall(k).values()),
               b"list": lambda k: client.lrange(k, 0, -1), b"set": lambda k: list(client.smembers(k))}  # fmt: skip
    found = []
    for name in client.scan_iter(count=1000):
        values = readers.get(client.type(name), lambda k: [])(name)
        found += [name for value in values if value and text.encode() in value]
    return found


def test_a_new_key_is_shown_once_works_and_is_stored_nowhere(client, api_client, caplog):
    caplog.set_level(logging.DEBUG)
    get_user_model().objects.create_superuser("op", password="a-long-test-password")
    assert client.login(username="op", password="a-long-test-password")  # a real session row
    tenant = make_tenant()

    page, key = _create_key(client, tenant)
    secret = key.split("_", 2)[2]
    assert "/admin/tenants/apikey/" in page  # a link onward

    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 200  # the key works

    with tenant_scope(tenant):
        stored = ApiKey.objects.for_tenant(tenant).get(name="from-admin")
    assert stored.hashed_key != key and secret.startswith(stored.prefix)
    assert _tables_holding(stored.hashed_key, tenant) == ["tenants_apikey"]  # the scan sees the key's row
    assert _tables_holding(secret, tenant) == []  # no session, admin log, message or key row holds it
    assert LogEntry.objects.filter(object_id=str(stored.pk), action_flag=1).exists()  # the log was written
    assert Session.objects.exists() and all(secret not in repr(s.get_decoded()) for s in Session.objects.all())
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    assert "messages" not in client.cookies  # nothing went through message storage
    assert _redis_values_holding(secret) == []
    assert secret not in caplog.text

    for after in ("/admin/tenants/apikey/", f"/admin/tenants/apikey/{stored.pk}/change/", ADD):
        response = client.get(after)  # the next page, and what a reload opens
        assert response.status_code == 200 and secret not in response.content.decode()
        assert not [m for m in response.context["messages"] if secret in str(m)]


def test_a_tenant_admin_creates_keys_for_their_tenant_only(client):
    mine, theirs = make_tenant(slug="mine"), make_tenant(slug="theirs")
    user = get_user_model().objects.create_user("tenant-admin", password="pw", is_staff=True)
    membership_set(tenant=mine, user=user, role=Membership.Role.ADMIN)
    client.force_login(user)

    _, key = _create_key(client, mine, name="mine-key")
    assert key.startswith(f"sc_{mine.pk}_")
    refused = client.post(ADD, {"tenant": theirs.pk, "name": "planted"})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    with tenant_scope(theirs):
        assert not ApiKey.objects.for_tenant(theirs).exists()


def test_a_key_created_in_the_admin_keeps_the_limits_set_on_the_form(client):
    tenant = make_tenant()
    client.force_login(get_user_model().objects.create_superuser("operator-limits", password="pw"))
    fields = {"tenant": tenant.pk, "name": "limited", "requests_per_minute": 7, "budget_period": "daily"}
    assert client.post(ADD, fields).status_code == 200
    with tenant_scope(tenant):
        key = ApiKey.objects.for_tenant(tenant).get(name="limited")
    assert (key.requests_per_minute, key.budget_period, str(key.soft_alert_ratio)) == (7, "daily", "0.800")
