"""Ingestion: chunk a document's text, embed the chunks (outside any transaction) and store
them, for the task the document services enqueue (``ai.rag.tasks``). The guarantees are
those of the document services (``ai.rag.services``).

The document's questions (its title, headings and the questions it asks) become the
tenant's router examples in the same transaction as its chunks (``ai.router.bootstrap``):
a tenant is routed by what its documents hold from the moment they can be retrieved."""

import logging

from ai.embeddings import get_embedder
from ai.rag.chunking import TextChunk, chunk_text
from ai.rag.models import Chunk, Document
from ai.router.bootstrap import document_examples, document_examples_replace, document_questions
from ai.router.examples import forget_example_sets
from ai.tenant_settings.selectors import settings_for
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.rag")
EMBED_BATCH = 32
# Rows per INSERT: each statement (with its HNSW index updates) stays well within the statement timeout.
CHUNK_INSERT_BATCH = 250


def document_ingest(*, tenant_id: int, document_id: int, force: bool = False) -> Document | None:
    """Chunk and embed a document; a no-op when its content is already ingested, unless ``force``.

    Raises what chunking or embedding raised, after marking the document failed.
    """
    document, go = _start(tenant_id, document_id, force)
    if not go:
        return document
    settings = settings_for(document.tenant)
    try:
        pieces = chunk_text(
            f"{document.title}\n\n{document.content}", size=settings.chunk_tokens, overlap=settings.chunk_overlap
        )
        embedder = get_embedder()
        texts = [p.text for p in pieces] + (questions := document_questions(document.title, document.content))
        vectors = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors.extend(embedder.embed(texts[start : start + EMBED_BATCH]).vectors)
    except Exception as exc:
        logger.exception("ingestion of document %s failed", document_id)
        _fail(tenant_id, document, exc)
        raise
    examples = document_examples(
        tenant_id=tenant_id, document=document, questions=questions, vectors=vectors[len(pieces) :],
        embedder_id=embedder.id,
    )  # fmt: skip
    stored = _store(tenant_id, document, pieces, vectors[: len(pieces)], embedder.id, examples)
    forget_example_sets()  # this process routes with them at once; others within ROW_CACHE_SECONDS
    return stored


def _start(tenant_id: int, document_id: int, force: bool) -> tuple[Document | None, bool]:
    """The document, marked processing, and whether to ingest it: not when it is gone,
    already ingested (unless forced), or changed since it was read (its own task follows)."""
    with tenant_scope(tenant_id):
        documents = Document.objects.for_tenant(tenant_id)
        document = documents.select_related("tenant").filter(pk=document_id).first()
        if document is None:
            return None, False
        if not force and document.ingested_hash == document.content_hash and document.status == Document.Status.READY:
            return document, False
        marked = documents.filter(pk=document_id, content_hash=document.content_hash).update(
            status=Document.Status.PROCESSING
        )
    return document, bool(marked)


def _fail(tenant_id: int, document: Document, exc: Exception) -> None:
    with tenant_scope(tenant_id):
        current = (
            Document.objects.for_tenant(tenant_id)
            .select_for_update()
            .filter(pk=document.pk, content_hash=document.content_hash)
            .first()
        )
        if current is None:
            return  # deleted or changed meanwhile: the newer content's task owns the status
        current.status, current.error = Document.Status.FAILED, f"{type(exc).__name__}: {exc}"[:500]
        current.save(update_fields=["status", "error", "updated_at"])  # post_save: the cache is invalidated


def _store(
    tenant_id: int, document: Document, pieces: list[TextChunk], vectors: list, embedder_id: str, examples: list
) -> Document | None:
    with tenant_scope(tenant_id):
        current = Document.objects.for_tenant(tenant_id).select_for_update().filter(pk=document.pk).first()
        if current is None or current.content_hash != document.content_hash:
            return current  # deleted or changed meanwhile: the newer task ingests it
        Chunk.objects.for_tenant(tenant_id).filter(document_id=document.pk).delete()
        Chunk.objects.for_tenant(tenant_id).bulk_create(
            [
                Chunk(
                    tenant_id=tenant_id,
                    document_id=document.pk,
                    position=p.position,
                    text=p.text,
                    token_count=p.token_count,
                    embedding=v,
                    embedder_id=embedder_id,
                )
                for p, v in zip(pieces, vectors, strict=True)
            ],
            batch_size=CHUNK_INSERT_BATCH,
        )
        document_examples_replace(tenant_id=tenant_id, document_id=document.pk, examples=examples)
        current.status, current.ingested_hash = Document.Status.READY, current.content_hash
        current.chunk_count, current.error = len(pieces), ""
        current.save(update_fields=["status", "ingested_hash", "chunk_count", "error", "updated_at"])
    return current
