"""Every admin and dashboard surface asks tenants/access.py: a member of tenant A gets 404 for tenant B.

Three people: a tenant admin of Alpha (staff with an admin membership, the reviewer's
reproduction); a staff user with every Django permission but no membership (an operator
under the old rule, "staff without memberships see every tenant"; nobody now); and an
operator (a superuser), who sees both tenants.
"""

import io
import json
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from ai.cache import CacheScope, get_cache
from ai.rag.models import Document
from ai.router.models import RouterExample, RouteRule, text_hash
from ai.tenant_settings.models import TenantAISettings, TenantSettingsChange
from ai.verifier.models import LabelledPair, VerifierModel
from billing.models import TenantBudget, UsageRecord
from billing.services import Usage, usage_record
from tenants.models import Membership, Tenant
from tenants.scoping import tenant_scope, unscoped_scope
from tenants.services import membership_set
from tests.factories import make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection

ADMIN_MODELS = [
    "tenants/membership", "tenants/apikey", "ai/document", "ai/routerexample", "ai/routerule",
    "ai/tenantaisettings", "ai/tenantsettingschange", "billing/tenantbudget", "billing/usagerecord",
    "ai/labelledpair", "ai/verifiermodel",
]  # fmt: skip


@dataclass
class World:
    alpha: Tenant
    bravo: Tenant
    rows: dict[str, dict[str, int]]  # tenant slug -> admin model path -> pk of one row

    def url(self, tenant: Tenant, model: str, view: str = "change") -> str:
        return f"/admin/{model}/{self.rows[tenant.slug][model]}/{view}/"


def _rows_of(tenant: Tenant) -> dict[str, int]:
    """One row of every tenant-owned model the admin shows, each naming the tenant."""
    member = get_user_model().objects.create_user(f"member-of-{tenant.slug}")
    usage_record(tenant=tenant, usage=Usage(request_id=f"{tenant.slug}-r1", source="llm", model="gpt-4o-mini",
                                            input_tokens=100, output_tokens=20))  # fmt: skip
    question = f"How do {tenant.name} refunds work?"
    with tenant_scope(tenant):
        rows = {
            "tenants/membership": Membership.objects.create(tenant=tenant, user=member, role="viewer"),
            "ai/document": Document.objects.create(tenant=tenant, title=f"{tenant.name} price list", content="x"),
            "ai/routerexample": RouterExample.objects.create(
                tenant=tenant, text=question, text_hash=text_hash(question), intent="retrieval", complexity="low"
            ),
            "ai/routerule": RouteRule.objects.create(tenant=tenant, intent="chat", complexity="low", model="gpt-4o"),
            "ai/tenantaisettings": TenantAISettings.objects.create(tenant=tenant),
            "ai/tenantsettingschange": TenantSettingsChange.objects.create(
                tenant=tenant, field="cache_ttl_seconds", old_value="86400", new_value="3600"
            ),
            "billing/tenantbudget": TenantBudget.objects.create(tenant=tenant, monthly_spend_limit=Decimal(10)),
            "billing/usagerecord": UsageRecord.objects.for_tenant(tenant).get(request_id=f"{tenant.slug}-r1"),
            "ai/labelledpair": LabelledPair.objects.create(
                tenant=tenant, text_a=question, text_b=f"{tenant.name} refund policy?", same=True, source="feedback"
            ),
            "ai/verifiermodel": VerifierModel.objects.create(
                tenant=tenant, embedder_id="local:x", blob=b"", min_score=0.5, report={"of": tenant.slug}
            ),
        }
    rows["tenants/apikey"], _ = make_key(tenant, name=f"key of {tenant.slug}")
    return {model: row.pk for model, row in rows.items()}


@pytest.fixture
def world() -> World:
    alpha, bravo = make_tenant(slug="alpha-air", name="Alpha Air"), make_tenant(slug="bravo-bank", name="Bravo Bank")
    return World(alpha, bravo, {t.slug: _rows_of(t) for t in (alpha, bravo)})


@pytest.fixture
def as_user(client, world):
    """Sign the test client in as one of: alpha_admin, stray_staff, operator."""

    def login(who: str, *, every_permission: bool | None = None):
        users = get_user_model().objects
        user = users.filter(username=who).first()
        if user is None and who == "operator":
            user = users.create_superuser("operator", password="pw")
        elif user is None:
            user = users.create_user(who, password="pw", is_staff=True)
        if who == "alpha_admin":
            membership_set(tenant=world.alpha, user=user, role=Membership.Role.ADMIN)
        if every_permission or (every_permission is None and who == "stray_staff"):
            group, _ = Group.objects.get_or_create(name="every permission")
            group.permissions.set(Permission.objects.all())
            user.groups.add(group)
        client.force_login(user)
        return client

    return login


def _generation(tenant: Tenant) -> int:
    return get_cache().lookup_exact(CacheScope(tenant.pk, "any-embedder"), "a question").generation


# --- the billing dashboard ---------------------------------------------------------------------


def test_a_tenant_admin_reads_their_own_dashboard_and_csv_and_gets_404_for_another_tenants(as_user, world):
    client = as_user("alpha_admin")
    assert client.get("/billing/", {"tenant": world.alpha.slug}).status_code == 200
    assert client.get("/billing/usage.csv", {"tenant": world.alpha.slug}).status_code == 200
    assert client.get("/billing/", {"tenant": world.bravo.slug}).status_code == 404
    assert client.get("/billing/usage.csv", {"tenant": world.bravo.slug}).status_code == 404
    picker = client.get("/billing/").content.decode()
    assert "Alpha Air" in picker and "bravo" not in picker.lower()


def test_staff_without_a_membership_read_no_dashboard(as_user, world):
    client = as_user("stray_staff")
    for tenant in (world.alpha, world.bravo):
        assert client.get("/billing/", {"tenant": tenant.slug}).status_code == 404
        assert client.get("/billing/usage.csv", {"tenant": tenant.slug}).status_code == 404
    assert client.get("/billing/").status_code == 404


# --- admin changelists and object URLs ------------------------------------------------------------


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_a_changelist_shows_each_person_exactly_the_tenants_they_manage(as_user, world, model):
    page = as_user("alpha_admin").get(f"/admin/{model}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert world.url(world.alpha, model) in html
    assert world.url(world.bravo, model) not in html
    assert "bravo" not in html.lower()  # not in rows, filters or choices
    assert as_user("stray_staff").get(f"/admin/{model}/").status_code == 403
    html = as_user("operator").get(f"/admin/{model}/").content.decode()
    assert world.url(world.alpha, model) in html and world.url(world.bravo, model) in html


@pytest.mark.parametrize("view", ["change", "delete", "history"])
@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_another_tenants_object_is_404_for_a_tenant_admin_and_for_staff_without_a_membership(
    as_user, world, model, view
):
    alpha_admin = as_user("alpha_admin")
    assert alpha_admin.get(world.url(world.alpha, model, "change")).status_code == 200
    assert alpha_admin.get(world.url(world.bravo, model, view)).status_code == 404
    assert alpha_admin.post(world.url(world.bravo, model, view), {"post": "yes"}).status_code == 404
    assert as_user("stray_staff").get(world.url(world.alpha, model, view)).status_code == 404
    app_label, model_name = model.split("/")
    from django.apps import apps

    with unscoped_scope():
        assert apps.get_model(app_label, model_name).objects.filter(pk=world.rows["bravo-bank"][model]).exists()


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_an_admin_of_two_tenants_sees_both_and_nothing_of_a_third(client, world, model):
    """With two tenants the admin runs unscoped (no RLS wall): the admin's own filtering must hold."""
    charlie = make_tenant(slug="charlie-cars")
    charlie_rows = _rows_of(charlie)
    admin_of_two = get_user_model().objects.create_user("two-tenants", password="pw", is_staff=True)
    for tenant in (world.alpha, charlie):
        membership_set(tenant=tenant, user=admin_of_two, role=Membership.Role.OWNER)
    client.force_login(admin_of_two)
    html = client.get(f"/admin/{model}/").content.decode()
    assert world.url(world.alpha, model) in html and f"/{charlie_rows[model]}/change/" in html
    assert world.url(world.bravo, model) not in html and "bravo" not in html.lower()
    for view in ("change", "delete", "history"):
        assert client.get(world.url(world.bravo, model, view)).status_code == 404


# --- the Tenant admin and autocomplete ------------------------------------------------------------


def test_the_tenant_admin_shows_a_tenant_admin_their_own_tenant_read_only(as_user, world):
    client = as_user("alpha_admin")
    listing = client.get("/admin/tenants/tenant/").content.decode()
    assert f"/admin/tenants/tenant/{world.alpha.pk}/change/" in listing and "bravo" not in listing.lower()
    own = client.get(f"/admin/tenants/tenant/{world.alpha.pk}/change/")
    assert own.status_code == 200 and 'name="_save"' not in own.content.decode()
    rename = {"slug": "alpha-air", "name": "Mine", "plan": "enterprise", "active": "on"}
    refused = client.post(f"/admin/tenants/tenant/{world.alpha.pk}/change/", rename)
    assert refused.status_code == 403
    assert client.get("/admin/tenants/tenant/add/").status_code == 403
    for view in ("change", "delete", "history"):
        assert client.get(f"/admin/tenants/tenant/{world.bravo.pk}/{view}/").status_code == 404
    world.alpha.refresh_from_db()
    assert (world.alpha.name, world.alpha.plan) == ("Alpha Air", "free")


def test_staff_without_a_membership_see_no_tenant_and_operators_see_all(as_user, world, client):
    index = as_user("stray_staff").get("/admin/")  # runs in no tenant scope at all, and does not fail
    assert index.status_code == 200 and "Alpha" not in index.content.decode()
    assert client.get("/admin/tenants/tenant/").status_code == 403
    assert client.get(f"/admin/tenants/tenant/{world.bravo.pk}/change/").status_code == 404
    listing = as_user("operator").get("/admin/tenants/tenant/").content.decode()
    assert "alpha-air" in listing and "bravo-bank" in listing


AUTOCOMPLETE = "/admin/autocomplete/"


def _autocomplete(client, term: str = "", **source) -> list[str]:
    params = {"app_label": "ai", "model_name": "document", "field_name": "tenant", "term": term, **source}
    response = client.get(AUTOCOMPLETE, params)
    assert response.status_code == 200, response.status_code
    return [row["text"] for row in response.json()["results"]]


def test_autocomplete_offers_a_tenant_admin_only_their_tenant(as_user, world):
    client = as_user("alpha_admin")
    assert _autocomplete(client) == ["alpha-air"]
    assert _autocomplete(client, term="bravo") == []
    assert _autocomplete(client, model_name="usagerecord", app_label="billing") == ["alpha-air"]
    users = {"app_label": "tenants", "model_name": "membership", "field_name": "user", "term": ""}
    assert client.get(AUTOCOMPLETE, users).status_code == 403  # users span tenants: operators only


def test_autocomplete_offers_staff_without_a_membership_nothing_and_operators_everything(as_user, world, client):
    stray = as_user("stray_staff")
    assert (
        stray.get(AUTOCOMPLETE, {"app_label": "ai", "model_name": "document", "field_name": "tenant"}).status_code
        == 403
    )
    assert {"alpha-air", "bravo-bank"} <= set(_autocomplete(as_user("operator")))


def test_django_permissions_never_widen_what_a_tenant_admin_sees(as_user, world):
    client = as_user("alpha_admin", every_permission=True)
    assert _autocomplete(client) == ["alpha-air"]
    assert "bravo" not in client.get("/admin/tenants/tenant/").content.decode().lower()
    assert client.get(f"/admin/tenants/tenant/{world.bravo.pk}/change/").status_code == 404
    assert client.get(world.url(world.bravo, "ai/document")).status_code == 404
    assert client.get("/billing/", {"tenant": world.bravo.slug}).status_code == 404
    for global_data in ("catalog/modelprice", "auth/user", "auth/group", "django_tasks_database/dbtaskresult"):
        assert client.get(f"/admin/{global_data}/").status_code == 403, global_data


# --- the operator console views ------------------------------------------------------------------


def test_flushing_another_tenants_cache_is_404_and_flushes_nothing(as_user, world):
    before = _generation(world.bravo)
    settings_pk = world.rows["bravo-bank"]["ai/tenantaisettings"]
    assert as_user("alpha_admin").post(f"/admin/ai/tenantaisettings/{settings_pk}/flush/").status_code == 404
    action = {"action": "flush_cache", "_selected_action": [settings_pk], "index": 0}
    as_user("alpha_admin").post("/admin/ai/tenantaisettings/", action)
    assert as_user("stray_staff").post(f"/admin/ai/tenantaisettings/{settings_pk}/flush/").status_code == 404
    assert _generation(world.bravo) == before


def test_try_a_query_and_import_treat_another_tenant_as_missing(as_user, world):
    client = as_user("alpha_admin")
    form = client.get("/admin/ai/routerexample/try/").content.decode()
    assert "alpha-air" in form and "bravo" not in form.lower()
    try_it = {"tenant": world.bravo.pk, "query": "What does Bravo Bank charge?"}
    assert client.post("/admin/ai/routerexample/try/", try_it).status_code == 404
    upload = io.BytesIO(json.dumps({"text": "Planted in Bravo", "intent": "chat", "complexity": "low"}).encode())
    upload.name = "examples.jsonl"
    response = client.post("/admin/ai/routerexample/import/", {"tenant": world.bravo.pk, "file": upload})
    assert response.status_code == 404
    with tenant_scope(world.bravo):
        assert not RouterExample.objects.for_tenant(world.bravo).filter(text="Planted in Bravo").exists()


def test_every_admin_page_asks_the_access_module():
    """A new ModelAdmin must say whose it is: tenant-owned rows, the tenants themselves, or operators'."""
    from django.contrib import admin

    from tenants.admin import OperatorOnlyAdmin, TenantAdmin, TenantOwnedAdmin

    undecided = [
        type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if not isinstance(model_admin, TenantOwnedAdmin | TenantAdmin | OperatorOnlyAdmin)
    ]
    assert undecided == []
