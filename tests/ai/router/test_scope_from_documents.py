"""A tenant's own documents define what it can be asked (issue 16): questions bootstrapped from
its documents at ingestion, a passage probe for what they miss, the starter set for small talk
and the clearly unrelated, and an out-of-scope floor fitted on training examples only."""

import asyncio
import uuid

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from ai.embeddings import get_embedder
from ai.pipeline import answer_query
from ai.rag.models import Document
from ai.rag.services import document_create, document_delete, document_update
from ai.router import bootstrap
from ai.router.bootstrap import document_questions
from ai.router.local import Example, ExampleSet
from ai.router.models import RouterExample
from ai.router.service import route_query
from ai.tenant_settings.models import TenantAISettings
from tenants.scoping import tenant_scope
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

FAQ = [
    ("How long are cats pregnant?", "A cat's pregnancy lasts about 63 to 65 days."),
    ("Can I give my cat milk?", "Most adult cats are lactose intolerant; water is better."),
    ("How often should a kitten be fed?", "Kittens under six months eat three to four small meals a day."),
    ("Why does my cat knead blankets?", "Kneading is a comfort behaviour kittens keep from nursing."),
]


def route(tenant, query):
    embedder = get_embedder()
    return route_query(
        tenant=tenant, query=query, vector=embedder.embed([query]).vectors[0], embedder_id=embedder.id,
        settings=TenantAISettings(tenant=tenant),
    )  # fmt: skip


def load_faq(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the ingestion tasks, run at once
        return [document_create(tenant=tenant, title=q, content=a) for q, a in FAQ]


def bootstrapped(tenant) -> list[RouterExample]:
    with tenant_scope(tenant):
        return list(RouterExample.objects.for_tenant(tenant).filter(document__isnull=False).order_by("text"))


def test_a_documents_title_headings_and_questions_become_its_questions():
    content = (
        "# Shipping times\nWe ship daily.\n\nDo you ship abroad? Yes, to 40 countries. Why? Demand.\n"
        "## Returns\n## Returns and refunds"
    )
    assert document_questions("Delivery FAQ", content) == [
        "Delivery FAQ",
        "Shipping times",
        "Returns and refunds",
        "Do you ship abroad?",
    ]  # a single word ("Why?", "Returns") says too little


def test_a_tenants_faq_routes_its_rephrasings_in_scope_with_no_examples_written(
    starter_examples, django_capture_on_commit_callbacks
):
    cats, other = make_tenant(), make_tenant()
    load_faq(cats, django_capture_on_commit_callbacks)
    examples = bootstrapped(cats)
    assert {e.text for e in examples} == {q for q, _ in FAQ}
    assert all(e.intent == "retrieval" and e.document_id and e.note.startswith("from the document") for e in examples)

    for rephrasing in ("how many days is a cat pregnant", "is milk bad for cats", "how many meals does a kitten need"):
        decision = route(cats, rephrasing)
        assert decision.intent == "retrieval", (rephrasing, decision)
        assert decision.confidence > 0.8
        # Another tenant, without these documents, is not answered about them.
        assert route(other, rephrasing).intent == "error"
    assert route(cats, "hello there, how are you?").intent == "chat"  # small talk stays in scope
    assert route(cats, "who won the football world cup").intent == "error"  # the clearly unrelated stays out


def test_bootstrapped_questions_follow_their_document(starter_examples, django_capture_on_commit_callbacks):
    tenant = make_tenant()
    documents = load_faq(tenant, django_capture_on_commit_callbacks)
    milk = next(d for d in documents if d.title == "Can I give my cat milk?")
    with django_capture_on_commit_callbacks(execute=True):
        document_update(tenant=tenant, document_id=milk.pk, title="Can cats drink cow's milk?")
    texts = {e.text for e in bootstrapped(tenant)}
    assert "Can cats drink cow's milk?" in texts and "Can I give my cat milk?" not in texts
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(tenant=tenant, document_id=milk.pk)
    assert "Can cats drink cow's milk?" not in {e.text for e in bootstrapped(tenant)}
    assert len(bootstrapped(tenant)) == len(FAQ) - 1


def test_a_passage_brings_back_in_scope_what_no_question_covers(starter_examples, django_capture_on_commit_callbacks):
    tenant = make_tenant()
    with django_capture_on_commit_callbacks(execute=True):
        document_create(
            tenant=tenant,
            title="Greenhouse manual",
            content="Tomato seedlings need sixteen hours of light and soil kept at 21 degrees to germinate well.",
        )
    decision = route(tenant, "what soil temperature do tomato seeds need to sprout")
    assert (decision.intent, decision.reason) == ("retrieval", "documents")
    with tenant_scope(tenant):
        assert Document.objects.for_tenant(tenant).count() == 1


def test_the_out_of_scope_floor_is_fitted_on_the_examples_error_examples_included():
    """Two topics in scope and, leaning on the first, queries labelled out of scope: the floor
    fitted by leave-one-out with them rises above the in-scope-only rule, and such a query is
    refused where the in-scope examples alone would have taken it."""
    rng = np.random.default_rng(1)
    centres = np.eye(16)[:3]

    def around(centre, n):
        vectors = centre + rng.normal(0, 0.25, (n, 16))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    beside = centres[0] * 0.5 + centres[2]
    vectors = np.concatenate([around(centres[0], 30), around(centres[1], 30), around(beside, 20)])
    examples = [Example(f"a{i}", "retrieval") for i in range(30)] + [Example(f"b{i}", "chat") for i in range(30)]
    examples += [Example(f"x{i}", "error") for i in range(20)]
    fitted, in_scope_only = ExampleSet(examples, vectors), ExampleSet(examples[:60], vectors[:60])
    assert fitted.floor > in_scope_only.floor
    query = beside / np.linalg.norm(beside)
    assert fitted.vote(query).intent == "error" and in_scope_only.vote(query).intent == "retrieval"


def test_the_admin_marks_bootstrapped_questions_and_filters_by_origin(
    client, starter_examples, django_capture_on_commit_callbacks
):
    tenant = make_tenant()
    load_faq(tenant, django_capture_on_commit_callbacks)
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    page = client.get("/admin/ai/routerexample/", {"origin": "document"}).content.decode()
    assert "document: How long are cats pregnant?" in page
    assert "Hi there!" not in page  # the starter set is written, not from a document
    written = client.get("/admin/ai/routerexample/", {"origin": "written", "q": "pregnant"}).content.decode()
    assert "How long are cats pregnant?" not in written


def test_a_cached_answer_about_another_document_is_not_served(django_capture_on_commit_callbacks):
    """Evidence agreement: with a permissive threshold, "Can I give my dog milk?" is near enough
    to the cached "Can I give my cat milk?" to be served its answer, but the tenant's documents
    say the two are about different entries; a rephrasing about the same entry is still a hit."""
    tenant = make_tenant()
    with tenant_scope(tenant):
        TenantAISettings.objects.create(tenant=tenant, threshold_standard=0.75, confidence_floor=0.0)
    with django_capture_on_commit_callbacks(execute=True):
        for question, answer in [*FAQ, ("Can I give my dog milk?", "Dogs digest milk poorly; a little is harmless.")]:
            document_create(tenant=tenant, title=question, content=answer)

    def ask(query):
        return asyncio.run(answer_query(tenant=tenant, query=query, user_id=None, request_id=str(uuid.uuid4())))

    assert ask("Can I give my cat milk?").source == "llm"  # answered and cached
    dog = ask("Can I give my dog milk?")
    assert dog.source == "llm" and dog.citations[0]["document"] == "Can I give my dog milk?"
    rephrased = ask("can i give my cat some milk")
    assert (rephrased.source, rephrased.cache["tier"]) == ("cache", "semantic")
    assert rephrased.citations[0]["document"] == "Can I give my cat milk?"


def test_a_tenants_bootstrapped_questions_are_capped(monkeypatch, django_capture_on_commit_callbacks):
    """Every worker keeps them in memory: a tenant uploading many documents gets no more than the
    cap, each document its title first, and a document deleted makes room again."""
    monkeypatch.setattr(bootstrap, "MAX_PER_TENANT", 5)
    tenant = make_tenant()
    with django_capture_on_commit_callbacks(execute=True):
        first = document_create(tenant=tenant, title="Shipping FAQ", content="How fast do you ship? Where do you ship?")
        document_create(tenant=tenant, title="Returns FAQ", content="Can I return a gift? Who pays for returns?")
    texts = [e.text for e in bootstrapped(tenant)]
    assert len(texts) == 5 and "Returns FAQ" in texts and "Shipping FAQ" in texts
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(tenant=tenant, document_id=first.pk)
        document_create(tenant=tenant, title="Payments FAQ", content="Do you take cards? Can I pay later?")
    assert {e.text for e in bootstrapped(tenant)} >= {"Payments FAQ", "Do you take cards?"}
