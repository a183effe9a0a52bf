"""Documents in the admin go through the services (issue 12, item 10): adding, editing,
deleting and re-ingesting there does what the API does, says what happened, and never
touches another tenant's chunks or cache."""

import pytest
from django.contrib.auth import get_user_model
from django_tasks_db.models import DBTaskResult

from ai.cache import get_cache
from ai.cache.keys import generation_key
from ai.rag.models import Chunk, Document, content_hash
from ai.tenant_settings.models import TenantAISettings
from tenants.models import Membership
from tenants.scoping import tenant_scope
from tests.factories import auth, make_tenant
from tests.tasks import DATABASE_TASKS, run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/ai/document/"
QUESTION = "How do I reset my password?"
TITLE = "How to reset your password"


@pytest.fixture
def operator(client):
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    return client


def chunk_ids(tenant, **filters) -> set[int]:
    with tenant_scope(tenant):
        return set(Chunk.objects.for_tenant(tenant).filter(**filters).values_list("pk", flat=True))


def document(tenant, title=TITLE) -> Document:
    with tenant_scope(tenant):
        return Document.objects.for_tenant(tenant).get(title=title)


def generation(tenant) -> bytes:
    return get_cache().client.get(generation_key(tenant.pk))


def action(client, name: str, ids: list[int], **extra):
    return client.post(CHANGELIST, {"action": name, "_selected_action": ids, "index": 0, **extra}, follow=True)


def test_a_document_added_in_the_admin_is_hashed_and_ingested(operator):
    tenant = make_tenant()
    form = {"tenant": tenant.pk, "title": "Shipping", "source": "kb/shipping", "content": "We ship in 2 days."}
    response = operator.post(f"{CHANGELIST}add/", form, follow=True)
    added = document(tenant, "Shipping")
    assert added.content_hash == content_hash("Shipping", "We ship in 2 days.")
    assert (added.status, added.chunk_count) == (Document.Status.READY, 1)  # the task ran (at once in tests)
    assert len(chunk_ids(tenant, document=added)) == 1
    assert "“Shipping” is queued for ingestion" in response.content.decode()

    again = operator.post(f"{CHANGELIST}add/", form)
    assert again.status_code == 200 and "already has a document titled" in again.content.decode()


def test_an_edit_in_the_admin_says_whether_the_text_changed(operator):
    tenant = make_tenant()
    for title, content in (("Shipping", "We ship in 2 days."), ("Returns", "Returns take a week.")):
        operator.post(f"{CHANGELIST}add/", {"tenant": tenant.pk, "title": title, "content": content}, follow=True)
    shipping = document(tenant, "Shipping")
    url, before = f"{CHANGELIST}{shipping.pk}/change/", chunk_ids(tenant, document=shipping)

    # (the tenant is read-only on this form: the posted one is ignored)
    same_text = {"tenant": tenant.pk, "title": "Shipping", "source": "kb/shipping", "content": "We ship in 2 days."}
    page = operator.post(url, same_text, follow=True).content.decode()
    assert "changed successfully" in page and "queued for ingestion" not in page
    assert chunk_ids(tenant, document=shipping) == before  # a new source is not new text

    page = operator.post(url, {**same_text, "content": "We ship in 3 days."}, follow=True).content.decode()
    after = chunk_ids(tenant, document=shipping)
    assert after and not after & before
    with tenant_scope(tenant):
        assert Chunk.objects.for_tenant(tenant).get(pk=next(iter(after))).text.endswith("We ship in 3 days.")
    assert "The text of “Shipping” changed: it is queued for ingestion" in page

    taken = operator.post(url, {**same_text, "title": "Returns"})
    assert taken.status_code == 200 and "already has a document titled" in taken.content.decode()


def test_reingest_in_the_admin_chunks_and_embeds_again(operator, helpdesk):
    tenant, _ = helpdesk()
    target = document(tenant)
    before = chunk_ids(tenant, document=target)
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, chunk_tokens=40, chunk_overlap=10)

    response = action(operator, "reingest", [target.pk])
    after = chunk_ids(tenant, document=target)
    assert len(after) > len(before) and not after & before  # re-chunked with the new settings
    assert document(tenant).chunk_count == len(after)
    assert "1 document(s) queued for ingestion" in response.content.decode()


def test_reingest_recovers_a_document_whose_task_was_lost(operator, helpdesk, api_client, settings):
    tenant, key = helpdesk()
    target = document(tenant)
    settings.TASKS = DATABASE_TASKS
    new = "To reset your password, call the quokka desk."
    api_client.patch(f"/api/v1/documents/{target.pk}", {"content": new}, format="json", **auth(key))
    DBTaskResult.objects.all().delete()  # the task is lost (its worker died with it)
    assert document(tenant).status == Document.Status.PENDING

    action(operator, "reingest", [target.pk])
    run_queued_tasks()
    assert (document(tenant).status, document(tenant).chunk_count) == (Document.Status.READY, 1)
    answer = api_client.post("/api/v1/ai/query", {"query": QUESTION}, format="json", **auth(key)).json()
    assert "quokka desk" in answer["response"]


def test_delete_in_the_admin_removes_chunks_and_stale_answers(operator, helpdesk, api_client):
    tenant, key = helpdesk()

    def ask():
        return api_client.post("/api/v1/ai/query", {"query": QUESTION}, format="json", **auth(key))

    ask()
    assert ask()["X-Cache"] == "HIT-EXACT"
    target = document(tenant)
    page = operator.post(f"{CHANGELIST}{target.pk}/delete/", {"post": "yes"}, follow=True).content.decode()
    assert "deleted successfully" in page and not chunk_ids(tenant, document_id=target.pk)
    assert ask()["X-Cache"] == "MISS"

    with tenant_scope(tenant):
        ids = list(Document.objects.for_tenant(tenant).values_list("pk", flat=True)[:3])
    action(operator, "delete_selected", ids, post="yes")
    with tenant_scope(tenant):
        assert not Document.objects.for_tenant(tenant).filter(pk__in=ids).exists()
    assert not chunk_ids(tenant, document_id__in=ids)
    assert ask()["X-Cache"] == "MISS"  # the bulk delete invalidated the cache too


def test_one_tenants_edits_and_reingests_never_touch_anothers_chunks_or_cache(client, operator, helpdesk, api_client):
    mine, my_key = helpdesk()
    theirs, their_key = helpdesk()
    cached = api_client.post("/api/v1/ai/query", {"query": QUESTION}, format="json", **auth(their_key)).json()
    their_chunks, their_generation, my_generation = chunk_ids(theirs), generation(theirs), generation(mine)
    mine_doc, their_doc = document(mine), document(theirs)

    # The operator edits, re-ingests and deletes the first tenant's documents; its API changes one too.
    edit = {"title": TITLE, "source": "", "content": "Resets go through the quokka desk."}
    operator.post(f"{CHANGELIST}{mine_doc.pk}/change/", edit)
    with tenant_scope(mine):
        all_mine = list(Document.objects.for_tenant(mine).values_list("pk", flat=True))
    action(operator, "reingest", all_mine)
    action(operator, "delete_selected", all_mine[-2:], post="yes")
    api_client.patch(f"/api/v1/documents/{all_mine[0]}", {"content": "New text."}, format="json", **auth(my_key))

    # A tenant admin of the first tenant tries the second tenant's document.
    admin = get_user_model().objects.create_user("mine-admin", password="pw", is_staff=True)
    with tenant_scope(mine):
        Membership.objects.create(tenant=mine, user=admin, role=Membership.Role.ADMIN)
    client.force_login(admin)
    action(client, "reingest", [their_doc.pk])
    action(client, "delete_selected", [their_doc.pk], post="yes")
    client.post(f"{CHANGELIST}{their_doc.pk}/change/", {**edit, "tenant": mine.pk})

    assert chunk_ids(theirs) == their_chunks and generation(theirs) == their_generation
    assert document(theirs).content == their_doc.content and document(theirs).status == Document.Status.READY
    again = api_client.post("/api/v1/ai/query", {"query": QUESTION}, format="json", **auth(their_key))
    assert again["X-Cache"] == "HIT-EXACT" and again.json()["response"] == cached["response"]
    assert generation(mine) != my_generation  # the first tenant's own cache was invalidated
