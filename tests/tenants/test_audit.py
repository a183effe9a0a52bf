"""The audit trail of keys, budgets, routes and prices (tenants/audit.py): who, when, which fields
from what to what; tenant-owned under Row-Level Security; no secrets; nothing on the request path."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from ai.router.models import RouteRule
from billing.key_limits import api_key_limits_set
from billing.models import TenantBudget
from catalog.models import ModelPrice
from tenants.apps import _name_command_actor
from tenants.audit import set_process_actor
from tenants.models import ApiKey, Membership
from tenants.scoping import tenant_scope, unscoped_scope
from tenants.services import api_key_touch, api_key_verify, membership_set
from tests.factories import auth, make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection

KeyHistory = ApiKey.history.model
BudgetHistory = TenantBudget.history.model


def _key_history(api_key: ApiKey) -> list:
    with tenant_scope(api_key.tenant_id):
        return list(KeyHistory.objects.for_tenant(api_key.tenant_id).filter(id=api_key.pk))


def _budget(tenant, **fields) -> TenantBudget:
    with tenant_scope(tenant):
        return TenantBudget.objects.create(tenant=tenant, monthly_spend_limit=Decimal(100), **fields)


def _fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_a_change_through_the_api_names_the_key_that_made_it_and_the_fields(api_client):
    tenant = make_tenant()
    target, _ = make_key(tenant, name="target")
    admin_key, plain = make_key(tenant, name="admin")

    answer = api_client.patch(
        f"/api/v1/keys/{target.pk}/limits", {"requests_per_minute": 10, "budget_usd": "5"}, format="json", **auth(plain)
    )
    assert answer.status_code == 200, answer.content
    assert api_client.delete(f"/api/v1/keys/{target.pk}", **auth(plain)).status_code == 200

    revoked, changed, created = _key_history(target)
    assert created.history_type == "+" and created.history_actor == "system"
    assert created.history_changes["name"] == [None, "target"]
    assert (changed.history_actor, changed.history_api_key_id, changed.history_user) == (
        f"api key {admin_key.pk}", admin_key.pk, None
    )  # fmt: skip
    assert changed.history_changes == {"requests_per_minute": [None, 10], "budget_usd": [None, "5.0000"]}
    assert list(revoked.history_changes) == ["revoked_at"] and revoked.history_changes["revoked_at"][0] is None
    assert revoked.history_date.tzinfo is not None and revoked.history_date.utcoffset() == timedelta(0)

    trail = api_client.get(f"/api/v1/keys/{target.pk}/history", **auth(plain))
    assert trail.status_code == 200
    entries = trail.json()
    assert [e["change"] for e in entries] == ["changed", "changed", "created"]
    changes = {"requests_per_minute": [None, 10], "budget_usd": [None, "5.0000"]}
    assert entries[1] == {
        "at": entries[1]["at"], "change": "changed", "actor": f"api key {admin_key.pk}",
        "actor_api_key_id": admin_key.pk, "changes": changes,
    }  # fmt: skip


def test_another_tenants_key_history_is_404_in_the_api(api_client):
    key_a, plain_a = make_key(make_tenant())
    key_b, _ = make_key(make_tenant())
    api_key_limits_set(tenant=key_b.tenant, key_id=key_b.pk, values={"requests_per_minute": 3})
    assert api_client.get(f"/api/v1/keys/{key_b.pk}/history", **auth(plain_a)).status_code == 404
    assert api_client.get(f"/api/v1/keys/{key_a.pk}/history", **auth(plain_a)).status_code == 200


def test_secrets_never_enter_the_trail():
    tenant = make_tenant()
    api_key, plain = make_key(tenant)
    budget = _budget(tenant, alert_webhook_url="https://example.com/hook", alert_webhook_secret="whsec-" + "s" * 40)
    budget.alert_webhook_secret = "whsec-" + "t" * 40
    budget.requests_per_minute = 30
    with tenant_scope(tenant):
        budget.save()
    key_fields = {f.name for f in KeyHistory._meta.get_fields()}
    assert not {"hashed_key", "prefix", "last_used_at"} & key_fields
    assert "alert_webhook_secret" not in {f.name for f in BudgetHistory._meta.get_fields()}
    secrets = [api_key.hashed_key, api_key.prefix, plain.rsplit("_", 1)[1], "whsec-"]
    with tenant_scope(tenant):
        rows = _fetch(
            "SELECT t::text FROM tenants_historicalapikey t "
            "UNION ALL SELECT t::text FROM billing_historicaltenantbudget t"
        )
    assert len(rows) == 3
    assert not [secret for secret in secrets for (row,) in rows if secret in row]


def test_nothing_is_recorded_on_the_request_path_or_for_a_save_that_changes_nothing():
    api_key, plain = make_key(make_tenant())
    assert len(_key_history(api_key)) == 1
    assert api_key_verify(key=plain) is not None  # stamps last_used_at with an UPDATE: no signal
    api_key_touch(tenant_id=api_key.tenant_id, key_id=api_key.pk, when=timezone.now() + timedelta(minutes=5))
    with tenant_scope(api_key.tenant_id):
        fresh = ApiKey.objects.for_tenant(api_key.tenant_id).get(pk=api_key.pk)
        fresh.last_used_at = timezone.now() + timedelta(minutes=10)
        fresh.save()  # only an excluded field moved
        fresh.save()
    assert len(_key_history(api_key)) == 1


def test_the_app_role_inside_one_tenant_reads_only_its_own_audit_rows():
    a, b = make_tenant(), make_tenant()
    key_a, _ = make_key(a)
    key_b, _ = make_key(b)
    _budget(a)
    _budget(b)
    with tenant_scope(a):
        assert _fetch("SELECT DISTINCT tenant_id FROM tenants_historicalapikey") == [(a.pk,)]
        assert _fetch("SELECT count(*) FROM tenants_historicalapikey WHERE id = %s", [key_b.pk]) == [(0,)]
        assert _fetch("SELECT DISTINCT tenant_id FROM billing_historicaltenantbudget") == [(a.pk,)]
    assert _fetch("SELECT count(*) FROM tenants_historicalapikey") == [(0,)]  # no scope: no row
    with unscoped_scope():
        assert KeyHistory.objects.unscoped().filter(id__in=[key_a.pk, key_b.pk]).count() == 2


def test_global_route_history_is_shared_and_a_tenants_is_its_own():
    a, b = make_tenant(), make_tenant()
    with unscoped_scope():
        rule = RouteRule.objects.global_rows().get(intent="analysis", complexity="high")
        rule.model = "gpt-4o-mini"
        rule.save()
    with tenant_scope(b):
        RouteRule.objects.create(tenant=b, intent="analysis", complexity="high", model="claude-3-haiku")
    with tenant_scope(a):
        rows = _fetch("SELECT tenant_id, history_changes FROM ai_historicalrouterule WHERE history_type = '~'")
        assert len(rows) == 1 and rows[0][0] is None and json.loads(rows[0][1])["model"][1] == "gpt-4o-mini"
        assert _fetch("SELECT count(*) FROM ai_historicalrouterule WHERE tenant_id = %s", [b.pk]) == [(0,)]
    with tenant_scope(b):
        assert _fetch("SELECT count(*) FROM ai_historicalrouterule WHERE tenant_id = %s", [b.pk]) == [(1,)]


def test_prices_and_commands_are_recorded():
    price = ModelPrice.objects.create(
        provider="openai", model="audit-model", input_per_million=1, output_per_million=2,
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    price.delete()
    deleted, created = ModelPrice.history.filter(model="audit-model")
    assert (created.history_type, deleted.history_type) == ("+", "-")
    assert deleted.history_changes["output_per_million"] == ["2.000000", None]

    tenant = make_tenant(slug="audited")
    _name_command_actor(["/srv/manage.py", "apikey_create"])
    try:
        call_command("apikey_create", "--tenant", "audited", "--rpm", "5", stdout=open("/dev/null", "w"))
    finally:
        set_process_actor("system")
    with tenant_scope(tenant):
        rows = list(KeyHistory.objects.for_tenant(tenant))
    assert {r.history_actor for r in rows} == {"command apikey_create"} and len(rows) == 2


@pytest.fixture
def two_tenants_with_keys_and_budgets():
    a, b = make_tenant(slug="tenant-a"), make_tenant(slug="tenant-b")
    keys = {t.slug: make_key(t, name=f"key-of-{t.slug}")[0] for t in (a, b)}
    budgets = {t.slug: _budget(t) for t in (a, b)}
    for t in (a, b):
        api_key_limits_set(tenant=t, key_id=keys[t.slug].pk, values={"metadata": {"owner": f"team-{t.slug}"}})
    return a, b, keys, budgets


@pytest.mark.parametrize("also_manages_another", [False, True])  # one tenant: its RLS scope; two: unscoped
def test_a_tenant_admin_sees_only_their_tenants_history(
    client, two_tenants_with_keys_and_budgets, also_manages_another
):
    a, b, keys, budgets = two_tenants_with_keys_and_budgets
    user = get_user_model().objects.create_user("a-admin", password="pw", is_staff=True)
    membership_set(tenant=a, user=user, role=Membership.Role.ADMIN)
    if also_manages_another:
        membership_set(tenant=make_tenant(), user=user, role=Membership.Role.ADMIN)
    client.force_login(user)

    assert client.get(f"/admin/tenants/apikey/{keys['tenant-a'].pk}/history/").status_code == 200
    assert client.get(f"/admin/tenants/apikey/{keys['tenant-b'].pk}/history/").status_code == 404
    assert client.get(f"/admin/billing/tenantbudget/{budgets['tenant-a'].pk}/history/").status_code == 200
    assert client.get(f"/admin/billing/tenantbudget/{budgets['tenant-b'].pk}/history/").status_code == 404
    page = client.get("/admin/tenants/historicalapikey/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "team-tenant-a" in html and "team-tenant-b" not in html
    with unscoped_scope():
        theirs = KeyHistory.objects.unscoped().filter(tenant=b).first()
        their_budget = BudgetHistory.objects.unscoped().filter(tenant=b).first()
    assert client.get(f"/admin/tenants/historicalapikey/{theirs.history_id}/change/").status_code == 404
    assert client.get(f"/admin/billing/historicaltenantbudget/{their_budget.history_id}/change/").status_code == 404
    assert client.get(f"/admin/tenants/apikey/{keys['tenant-a'].pk}/history/1/").status_code == 404  # no revert


def test_an_admin_change_names_the_user(client):
    tenant = make_tenant()
    api_key, _ = make_key(tenant, name="edited")
    operator = get_user_model().objects.create_superuser("op", password="pw")
    client.force_login(operator)
    expires = "2031-01-02 03:04:05"
    form = {"name": "edited", "expires_at_0": expires[:10], "expires_at_1": expires[11:], "allowed_models": "[]",
            "budget_period": "monthly", "soft_alert_ratio": "0.8", "cache_controls": "null",
            "metadata": "{}"}  # fmt: skip
    response = client.post(f"/admin/tenants/apikey/{api_key.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    latest = _key_history(api_key)[0]
    assert (latest.history_actor, latest.history_user_id) == ("admin op", operator.pk)
    assert latest.history_changes == {"expires_at": [None, "2031-01-02T03:04:05+00:00"]}
    page = client.get(f"/admin/tenants/apikey/{api_key.pk}/history/").content.decode()
    assert "admin op" in page and "expires_at" in page
    assert client.get("/admin/catalog/historicalmodelprice/").status_code == 200
