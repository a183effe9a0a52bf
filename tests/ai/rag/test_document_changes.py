"""A document whose text changed is never answered from its old text (issue 12, item 10):
not by retrieval, not by a cached answer; changed through the API, the bulk upload or the
admin; while its ingestion waits in the queue, after it failed, and once it is done.

Real PostgreSQL, Redis, embedder and task worker (django-tasks-db's own loop); the only
stand-in is the OpenAI-compatible embeddings server that refuses to embed."""

import json
import re
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings

from ai.cache import get_cache
from ai.cache.keys import generation_key
from ai.rag.models import Chunk, Document
from ai.rag.services import document_update
from tenants.scoping import tenant_scope
from tests.factories import auth
from tests.openai_server import OpenAIServer
from tests.tasks import DATABASE_TASKS, run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I reset my password?"
PARAPHRASE = "What's the way to reset my password?"
TITLE = "How to reset your password"  # a help-centre article whose old text answers QUESTION
NEW_TEXT = (
    "Password resets now go through the quokka desk. To reset your password, write to the quokka desk "
    "and a quokka will call you back within one working day."
)


def ask(api_client, key, query=QUESTION):
    response = api_client.post("/api/v1/ai/query", {"query": query}, format="json", **auth(key))
    assert response.status_code == 200, response.content
    return response


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 20]


def assert_nothing_of(old_text: str, response, *, uncited: int | None = None) -> None:
    """No sentence of ``old_text`` in the answer; and, while it is missing, no citation of the document."""
    body = response.json()
    leaked = [s for s in sentences(old_text) if s in body["response"]]
    assert not leaked, f"answered from the old text: {leaked}"
    assert uncited not in {c["document_id"] for c in body["citations"]}, body["citations"]


def the_document(tenant) -> Document:
    with tenant_scope(tenant):
        return Document.objects.for_tenant(tenant).get(title=TITLE)


@pytest.fixture
def operator(client):
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    return client


def change_through_the_api(api_client, operator, key, document):
    response = api_client.patch(f"/api/v1/documents/{document.pk}", {"content": NEW_TEXT}, format="json", **auth(key))
    assert response.status_code == 200, response.content


def change_through_the_bulk_upload(api_client, operator, key, document):
    line = json.dumps({"title": TITLE, "content": NEW_TEXT, "source": document.source})
    response = api_client.generic(
        "POST", "/api/v1/documents/bulk", line.encode(), content_type="application/x-ndjson", **auth(key)
    )
    assert response.json() == {"created": 0, "updated": 1}


def change_through_the_admin(api_client, operator, key, document):
    form = {"tenant": document.tenant_id, "title": TITLE, "source": document.source, "content": NEW_TEXT, "_save": "1"}
    response = operator.post(f"/admin/ai/document/{document.pk}/change/", form)
    assert response.status_code == 302, response.content  # saved (its message: tests/ai/test_documents_admin.py)


CHANGES = [change_through_the_api, change_through_the_bulk_upload, change_through_the_admin]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_a_changed_document_is_left_out_of_answers_until_its_new_text_is_ingested(
    api_client, operator, helpdesk, settings, change
):
    tenant, key = helpdesk()
    document = the_document(tenant)
    first = ask(api_client, key)
    assert "Forgot password" in first.json()["response"]  # answered from the old text...
    assert ask(api_client, key)["X-Cache"] == "HIT-EXACT"  # ...and cached

    settings.TASKS = DATABASE_TASKS  # ingestion waits in the queue, as under `db_worker`
    change(api_client, operator, key, document)
    assert api_client.get(f"/api/v1/documents/{document.pk}", **auth(key)).json()["status"] == "pending"

    for query in (QUESTION, PARAPHRASE, QUESTION):  # a miss, then whatever the cache holds now
        waiting = ask(api_client, key, query)
        assert_nothing_of(document.content, waiting, uncited=document.pk)
    assert waiting["X-Cache"] == "HIT-EXACT"  # the answer given while the document was missing...

    run_queued_tasks()
    assert the_document(tenant).status == Document.Status.READY
    after = ask(api_client, key)
    assert after["X-Cache"] == "MISS"  # ...is not served once it is back
    assert "quokka desk" in after.json()["response"]
    assert document.pk in {c["document_id"] for c in after.json()["citations"]}
    assert_nothing_of(document.content, ask(api_client, key, PARAPHRASE))


def test_a_failed_ingestion_leaves_the_document_failed_with_its_error_and_nothing_of_its_old_text(
    api_client, operator, helpdesk, settings
):
    tenant, key = helpdesk()
    document = the_document(tenant)
    assert "Forgot password" in ask(api_client, key).json()["response"]
    settings.TASKS = DATABASE_TASKS
    change_through_the_api(api_client, operator, key, document)
    assert_nothing_of(document.content, ask(api_client, key), uncited=document.pk)  # answered, cached
    before = generation(tenant)

    with OpenAIServer() as server:
        server.reply_embeddings(status=400)  # the embeddings provider refuses the new text
        config = {"backend": "openai", "base_url": server.base_url, "model": "embed-test", "dimensions": 384}
        with override_settings(AI={"EMBEDDER": config}):
            run_queued_tasks()

    shown = api_client.get(f"/api/v1/documents/{document.pk}", **auth(key)).json()
    assert shown["status"] == "failed" and "simulated 400" in shown["error"]
    assert generation(tenant) != before  # the failure invalidated the cache as well
    for query in (QUESTION, PARAPHRASE):
        assert_nothing_of(document.content, ask(api_client, key, query), uncited=document.pk)
    page = operator.get(f"/admin/ai/document/{document.pk}/change/").content.decode()
    assert "Failed" in page and "simulated 400" in page
    listing = operator.get("/admin/ai/document/?status__exact=failed").content.decode()
    assert TITLE in listing and "simulated 400" in listing

    # The operator re-ingests it once the provider is back: the new text answers.
    response = operator.post(
        "/admin/ai/document/", {"action": "reingest", "_selected_action": [document.pk], "index": 0}, follow=True
    )
    assert "1 document(s) queued for ingestion" in response.content.decode()
    run_queued_tasks()
    assert the_document(tenant).status == Document.Status.READY
    assert "quokka desk" in ask(api_client, key).json()["response"]


def generation(tenant) -> bytes | None:
    return get_cache().client.get(generation_key(tenant.pk))


def in_a_thread(function):
    """``function`` for another thread, which closes its own database connection when done."""

    def run(**kwargs):
        try:
            function(**kwargs)
        finally:
            connection.close()

    return run


def test_a_stale_ingestion_that_fails_does_not_mark_the_newer_text_failed(helpdesk):
    """Text A is still being embedded when text B arrives and is ingested; A's embedding then
    fails. B is ready and stays ready: A's failure is not B's (B's task owns the status)."""
    tenant, _ = helpdesk()
    document = the_document(tenant)
    with OpenAIServer() as server:
        held = server.reply_embeddings(status=400, hold=threading.Event())  # A's call: held, then refused
        config = {"backend": "openai", "base_url": server.base_url, "model": "embed-test", "dimensions": 384}
        with override_settings(AI={"EMBEDDER": config}):
            text_a = threading.Thread(target=in_a_thread(document_update), kwargs={
                "tenant": tenant, "document_id": document.pk, "content": "Text A.",
            })  # fmt: skip
            text_a.start()  # the update commits, then its ingestion (run at once in tests) waits on the server
            assert held.arrived.wait(timeout=30)
            document_update(tenant=tenant, document_id=document.pk, content=NEW_TEXT)  # B: ingested, ready
            assert the_document(tenant).status == Document.Status.READY
            held.hold.set()
            text_a.join(timeout=30)
    assert not text_a.is_alive()
    current = the_document(tenant)
    assert (current.status, current.error) == (Document.Status.READY, "")
    with tenant_scope(tenant):
        texts = " ".join(Chunk.objects.for_tenant(tenant).filter(document=current).values_list("text", flat=True))
    assert "quokka desk" in texts and "Text A" not in texts and "Forgot password" not in texts
