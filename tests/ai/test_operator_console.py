"""The operator console: audited settings, the cache panel, "try a query", example import/export,
and tenant admins confined to their own tenant."""

import io
import json

import pytest
from django.contrib.auth import get_user_model

from ai.cache import CacheScope, get_cache
from ai.cache.entries import CacheEntry
from ai.embeddings import get_embedder
from ai.rag.models import Document
from ai.router.models import RouterExample
from ai.tenant_settings.models import TenantAISettings, TenantSettingsChange
from tenants.models import Membership
from tenants.scoping import tenant_scope, unscoped_scope
from tests.factories import auth, make_tenant

SETTINGS_FORM = {
    "cache_enabled": "on", "cache_scope": "tenant", "cache_ttl_seconds": 3600, "threshold_standard": 0.9,
    "threshold_strict": 0.95, "confidence_floor": 0.8, "router_mode": "local", "router_llm_model": "gpt-4o-mini",
    "cascade_threshold": 0.6, "chunk_tokens": 200, "chunk_overlap": 40, "local_fallback": "on",
}  # fmt: skip


@pytest.fixture
def operator(client):
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    return client


def _tenant_admin(client, tenant, role=Membership.Role.ADMIN):
    user = get_user_model().objects.create_user(f"admin-{tenant.slug}-{role}", password="pw", is_staff=True)
    with tenant_scope(tenant):
        Membership.objects.create(tenant=tenant, user=user, role=role)
    client.force_login(user)
    return client


def _settings(tenant, **fields) -> TenantAISettings:
    with tenant_scope(tenant):
        return TenantAISettings.objects.create(tenant=tenant, **fields)


@pytest.mark.django_db(transaction=True)
def test_a_settings_change_is_recorded_with_who_what_from_and_to(operator):
    tenant = make_tenant()
    settings = _settings(tenant)
    form = {**SETTINGS_FORM, "threshold_standard": 0.86, "cache_ttl_seconds": 600}
    response = operator.post(f"/admin/ai/tenantaisettings/{settings.pk}/change/", form)
    assert response.status_code == 302
    with tenant_scope(tenant):
        changes = {c.field: c for c in TenantSettingsChange.objects.for_tenant(tenant)}
        assert TenantAISettings.objects.for_tenant(tenant).get().threshold_standard == 0.86
    assert set(changes) == {"threshold_standard", "cache_ttl_seconds"}
    assert (changes["threshold_standard"].old_value, changes["threshold_standard"].new_value) == ("0.9", "0.86")
    assert changes["cache_ttl_seconds"].user.username == "op"
    page = operator.get(f"/admin/ai/tenantaisettings/{settings.pk}/change/").content.decode()
    assert "settings-changes" in page and "0.86" in page


@pytest.mark.django_db(transaction=True)
def test_an_invalid_change_is_refused_and_not_recorded(operator):
    tenant = make_tenant()
    settings = _settings(tenant)
    form = {**SETTINGS_FORM, "threshold_standard": 0.97}  # above strict
    response = operator.post(f"/admin/ai/tenantaisettings/{settings.pk}/change/", form)
    assert response.status_code == 200 and "standard &lt;= strict" in response.content.decode()
    with tenant_scope(tenant):
        assert not TenantSettingsChange.objects.for_tenant(tenant).exists()


@pytest.mark.django_db(transaction=True)
def test_the_cache_panel_counts_entries_and_flushing_stops_old_hits(operator):
    tenant = make_tenant()
    settings = _settings(tenant)
    embedder = get_embedder()
    cache, scope = get_cache(), CacheScope(tenant.pk, embedder.id)
    generation = cache.lookup_exact(scope, "What are your opening hours?").generation
    for question in ("What are your opening hours?", "Do you ship abroad?"):
        entry = CacheEntry(query=question, response="An answer.")
        cache.store(scope, generation, entry, ttl=60, vector=embedder.embed([question]).vectors[0])
    page = operator.get(f"/admin/ai/tenantaisettings/{settings.pk}/change/").content.decode()
    assert 'data-field="entries">2<' in page and "Flush this tenant" in page
    response = operator.post(f"/admin/ai/tenantaisettings/{settings.pk}/flush/", follow=True)
    assert "Flushed the cache of 1 tenant" in response.content.decode()
    assert cache.lookup_exact(scope, "What are your opening hours?").hit is None
    assert 'data-field="entries">0<' in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_try_a_query_shows_the_decision_and_threshold_without_an_llm(helpdesk, operator):
    tenant, _ = helpdesk()
    _settings(tenant, router_mode=TenantAISettings.RouterMode.LLM, confidence_floor=0.0, threshold_standard=0.87)
    page = operator.post("/admin/ai/routerexample/try/", {"tenant": tenant.pk, "query": "How do I reset my password?"})
    text = page.content.decode()
    assert page.status_code == 200 and 'id="decision-table"' in text
    assert 'data-field="threshold">0.87<' in text  # the tenant's standard threshold (floor 0: never strict)
    assert "local" in text and "may ask the LLM router" in text
    assert text.count("<tr><td>0.") >= 3  # the nearest examples with their similarity


@pytest.mark.django_db(transaction=True)
def test_examples_import_and_export_as_json_lines(operator):
    tenant = make_tenant()
    rows = [
        {"text": "Where is my parcel?", "intent": "retrieval", "complexity": "low"},
        {"text": "Summarise last quarter's tickets by theme", "intent": "analysis", "complexity": "high"},
    ]
    upload = io.BytesIO("".join(json.dumps(r) + "\n" for r in rows).encode())
    upload.name = "examples.jsonl"
    response = operator.post("/admin/ai/routerexample/import/", {"tenant": tenant.pk, "file": upload}, follow=True)
    assert "2 created, 0 updated" in response.content.decode(), response.context["form"].errors
    with unscoped_scope():
        ids = list(RouterExample.objects.unscoped().filter(tenant=tenant).values_list("pk", flat=True))
    export = operator.post("/admin/ai/routerexample/", {"action": "export_jsonl", "_selected_action": ids, "index": 0})
    exported = [json.loads(line) for line in export.content.decode().splitlines()]
    assert export["Content-Type"] == "application/x-ndjson"
    assert {(r["text"], r["intent"]) for r in exported} == {(r["text"], r["intent"]) for r in rows}
    bad = io.BytesIO(b'{"text": "no intent"}\n')
    bad.name = "bad.jsonl"
    response = operator.post("/admin/ai/routerexample/import/", {"tenant": tenant.pk, "file": bad})
    assert response.status_code == 200 and "needs at least" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_tenant_admin_sees_and_changes_only_their_own_tenant(client):
    mine, theirs = make_tenant(slug="mine"), make_tenant(slug="theirs")
    my_settings, their_settings = _settings(mine), _settings(theirs)
    with tenant_scope(theirs):
        their_doc = Document.objects.create(tenant=theirs, title="Their secret", content="x")
    _tenant_admin(client, mine)
    listing = client.get("/admin/ai/tenantaisettings/").content.decode()
    assert f"/{my_settings.pk}/change/" in listing and f"/{their_settings.pk}/change/" not in listing
    assert client.get(f"/admin/ai/tenantaisettings/{my_settings.pk}/change/").status_code == 200
    assert client.get(f"/admin/ai/tenantaisettings/{their_settings.pk}/change/").status_code == 404
    assert client.post(f"/admin/ai/tenantaisettings/{their_settings.pk}/change/", SETTINGS_FORM).status_code == 404
    assert client.post(f"/admin/ai/tenantaisettings/{their_settings.pk}/flush/").status_code == 404
    assert client.get(f"/admin/ai/document/{their_doc.pk}/change/").status_code == 404
    assert "Their secret" not in client.get("/admin/ai/document/").content.decode()
    assert client.get("/admin/catalog/modelprice/").status_code == 403  # operators' data
    tenants = client.get("/admin/tenants/tenant/").content.decode()  # their own tenant, read-only
    assert f"/tenant/{mine.pk}/change/" in tenants and f"/tenant/{theirs.pk}/change/" not in tenants
    with tenant_scope(theirs):
        assert TenantAISettings.objects.for_tenant(theirs).get().threshold_standard == 0.9
    choices = client.get("/admin/ai/routerexample/try/").content.decode()
    assert "mine" in choices and "theirs" not in choices


@pytest.mark.django_db(transaction=True)
def test_a_tenant_viewer_gets_nothing_in_the_admin(client):
    tenant = make_tenant()
    settings = _settings(tenant)
    _tenant_admin(client, tenant, role=Membership.Role.VIEWER)
    assert client.get(f"/admin/ai/tenantaisettings/{settings.pk}/change/").status_code == 404
    assert f"/{settings.pk}/change/" not in client.get("/admin/ai/tenantaisettings/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_threshold_changed_in_the_admin_is_used_by_the_next_query(helpdesk, operator, api_client):
    tenant, key = helpdesk()
    settings = _settings(tenant, confidence_floor=0.0)
    query = {"query": "How do I reset my password?"}
    first = api_client.post("/api/v1/ai/query", query, format="json", **auth(key)).json()
    assert first["cache"]["threshold"] == 0.9
    operator.post(f"/admin/ai/tenantaisettings/{settings.pk}/change/", {**SETTINGS_FORM, "confidence_floor": 0.0,
                                                                       "threshold_standard": 0.83})  # fmt: skip
    second = api_client.post("/api/v1/ai/query", {**query, "cache": "refresh"}, format="json", **auth(key)).json()
    assert second["cache"]["threshold"] == 0.83
