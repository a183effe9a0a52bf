import numpy as np
import pytest

from ai.embeddings import get_embedder
from ai.rag.chunking import chunk_text
from ai.rag.ingestion import document_ingest
from ai.rag.models import Chunk, Document, content_hash
from ai.rag.retrieval import retrieve
from ai.rag.services import document_create, document_update
from tenants.scoping import tenant_scope
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


def test_chunks_are_token_windows_with_overlap():
    text = " ".join(f"word{n}" for n in range(300))
    chunks = chunk_text(text, size=50, overlap=10)
    assert [c.token_count for c in chunks][:-1] == [50] * (len(chunks) - 1)
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert first[-2:] == second[:2] or set(first) & set(second)  # consecutive chunks share text
    assert chunks[0].text.startswith("word0") and chunks[-1].text.endswith("word299")


def test_ingestion_chunks_embeds_and_skips_unchanged_content(django_capture_on_commit_callbacks):
    tenant = make_tenant()
    with django_capture_on_commit_callbacks(execute=True):  # the ingestion task, run at once in tests
        document = document_create(tenant=tenant, title="Refunds", content="Refunds are possible within 30 days. " * 40)
    with tenant_scope(tenant):
        document.refresh_from_db()
        chunks = list(Chunk.objects.for_tenant(tenant).filter(document=document))
    assert document.status == Document.Status.READY and document.chunk_count == len(chunks) > 1
    ids = {c.pk for c in chunks}
    assert document_ingest(tenant_id=tenant.pk, document_id=document.pk).chunk_count == len(chunks)
    with tenant_scope(tenant):
        assert {c.pk for c in Chunk.objects.for_tenant(tenant).filter(document=document)} == ids  # untouched
    with django_capture_on_commit_callbacks(execute=True):
        document_update(tenant=tenant, document_id=document.pk, content="Refunds are no longer offered.")
    with tenant_scope(tenant):
        texts = list(Chunk.objects.for_tenant(tenant).filter(document=document).values_list("text", flat=True))
    assert len(texts) == 1 and "no longer" in texts[0]


def test_a_content_change_retires_the_old_chunks_in_the_same_transaction(django_capture_on_commit_callbacks):
    tenant = make_tenant()
    with django_capture_on_commit_callbacks(execute=True):
        document = document_create(tenant=tenant, title="Refunds", content="Refunds are possible within 30 days.")
    with django_capture_on_commit_callbacks(execute=False) as queued:  # ingestion not run: still queued
        document_update(tenant=tenant, document_id=document.pk, content="Refunds are no longer offered.")
    with tenant_scope(tenant):
        document.refresh_from_db()
        assert not Chunk.objects.for_tenant(tenant).filter(document=document).exists()
    assert (document.status, document.chunk_count, document.ingested_hash) == (Document.Status.PENDING, 0, "")
    assert len(queued) == 2  # the ingestion task and the cache invalidation, both after the commit


def test_retrieval_leaves_out_a_document_whose_text_is_not_the_one_its_chunks_were_made_from(
    django_capture_on_commit_callbacks,
):
    """Even a writer that forgot the chunks (a raw update) cannot make retrieval serve old text."""
    tenant = make_tenant()
    text = "Refunds are possible within 30 days of purchase."
    with django_capture_on_commit_callbacks(execute=True):
        document = document_create(tenant=tenant, title="Refunds", content=text)
    vector = get_embedder().embed([text]).vectors[0]
    assert [c.document_id for c in retrieve(tenant=tenant, vector=vector)] == [document.pk]
    new = "Refunds are no longer offered."
    with tenant_scope(tenant):
        Document.objects.for_tenant(tenant).filter(pk=document.pk).update(
            content=new, content_hash=content_hash("Refunds", new)
        )
        assert Chunk.objects.for_tenant(tenant).filter(document=document).exists()  # still there...
    assert retrieve(tenant=tenant, vector=vector) == []  # ...but never returned


def test_a_small_tenant_beside_a_large_one_still_gets_k_results_with_high_recall():
    big, small = make_tenant(), make_tenant()
    rng = np.random.default_rng(3)

    def add(tenant, count):
        vectors = rng.standard_normal((count, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with tenant_scope(tenant):
            document = Document.objects.for_tenant(tenant).create(
                tenant=tenant, title="d", content="x", content_hash="h", ingested_hash="h"
            )
            Chunk.objects.for_tenant(tenant).bulk_create(
                [
                    Chunk(
                        tenant=tenant,
                        document=document,
                        position=i,
                        text=f"c{i}",
                        token_count=1,
                        embedding=v,
                        embedder_id="e",
                    )
                    for i, v in enumerate(vectors)
                ],
                batch_size=100,  # each INSERT well within the statement timeout, on a busy machine too
            )
        return vectors

    add(big, 4000)
    small_vectors = add(small, 40)
    recalls = []
    for query in rng.standard_normal((20, 384)).astype(np.float32):
        query /= np.linalg.norm(query)
        found = retrieve(tenant=small, vector=query, k=10)
        assert len(found) == 10 and all(c.title == "d" for c in found)
        exact = set(np.argsort(-(small_vectors @ query))[:10])
        recalls.append(len(exact & {c.position for c in found}) / 10)
    assert np.mean(recalls) >= 0.95
