"""Document writes and ingestion (chunk, embed, store): the only writers of
documents and chunks.

Guarantees:
- A document is never answered from text it no longer has. The write that
  changes a document's title or content deletes its chunks in the same
  transaction, and retrieval returns only chunks of documents whose ingested
  hash is their current content hash (``ai.rag.retrieval``). Until its new
  text is ingested the document is absent from answers, never stale.
- The tenant's cache is invalidated after every commit that changes what
  retrieval can return: the write itself, a finished ingestion and a failed
  one (``ai.rag.signals``), so answers given while a document was missing are
  not served once it is back.
- Ingestion is a background task enqueued on commit. Re-ingesting unchanged
  content does nothing unless forced. Embeddings are computed outside any
  transaction.
- A failed ingestion marks the document failed, with the error, unless the
  document changed meanwhile: the newer content's task owns its status.

Not guaranteed: a task lost with its process (the web process killed between
the commit and the enqueue, a worker killed mid-task) leaves the document
pending or processing until it is re-ingested (the admin's action,
``document_reingest``); meanwhile it is left out of answers.
"""

import logging

from django.db import transaction

from ai.embeddings import get_embedder
from ai.rag.chunking import TextChunk, chunk_text
from ai.rag.models import Chunk, Document, content_hash
from ai.tenant_settings import settings_for
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.rag")
EMBED_BATCH = 32
# Rows per INSERT: each statement (with its HNSW index updates) stays well within the statement timeout.
CHUNK_INSERT_BATCH = 250


def _enqueue(document: Document, *, force: bool = False) -> None:
    from ai.rag.tasks import ingest_document

    kwargs = {"tenant_id": document.tenant_id, "document_id": document.pk, **({"force": True} if force else {})}
    transaction.on_commit(lambda: ingest_document.enqueue(**kwargs))


def _stage_new_text(document: Document) -> None:
    """The document's text changed: its chunks (of the old text) go now, in the caller's
    transaction, and it waits for ingestion of the new text."""
    Chunk.objects.for_tenant(document.tenant_id).filter(document_id=document.pk).delete()
    document.content_hash = content_hash(document.title, document.content)
    document.ingested_hash, document.chunk_count, document.error = "", 0, ""
    document.status = Document.Status.PENDING


def document_create(*, tenant: Tenant, title: str, content: str, source: str = "") -> Document:
    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).create(
            tenant=tenant, title=title, content=content, source=source, content_hash=content_hash(title, content)
        )
        _enqueue(document)
    return document


def document_update(
    *, tenant: Tenant, document_id: int, title: str | None = None, content: str | None = None, source: str | None = None
) -> Document:
    """Change a document (None leaves a field as it is). New text retires the old chunks at once."""
    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).select_for_update().get(pk=document_id)
        for name, value in (("title", title), ("content", content), ("source", source)):
            if value is not None:
                setattr(document, name, value)
        if content_hash(document.title, document.content) != document.content_hash:
            _stage_new_text(document)
            _enqueue(document)
        document.save()
    return document


def document_reingest(*, tenant: Tenant, document_id: int) -> Document:
    """Chunk and embed the document again even if its text is unchanged (new chunk settings,
    a stuck or failed ingestion). A hash that no longer matches the text is corrected first."""
    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).select_for_update().get(pk=document_id)
        if content_hash(document.title, document.content) != document.content_hash:
            _stage_new_text(document)
        document.status, document.error = Document.Status.PENDING, ""
        document.save()
        _enqueue(document, force=True)
    return document


def document_delete(*, tenant: Tenant, document_id: int) -> None:
    with tenant_scope(tenant):
        Document.objects.for_tenant(tenant).get(pk=document_id).delete()


def documents_bulk_upsert(*, tenant: Tenant, rows: list[dict]) -> tuple[int, int]:
    """Create or update documents by title in one transaction. Returns (created, updated)."""
    created = updated = 0
    rows = list({row["title"]: row for row in rows}.values())  # a title twice: the last wins
    with tenant_scope(tenant):
        existing = {
            d.title: d for d in Document.objects.for_tenant(tenant).filter(title__in=[r["title"] for r in rows])
        }
        for row in rows:
            document = existing.get(row["title"])
            if document is None:
                document_create(tenant=tenant, **row)
                created += 1
            else:
                document_update(tenant=tenant, document_id=document.pk, **row)
                updated += 1
    return created, updated


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
        vectors = []
        for start in range(0, len(pieces), EMBED_BATCH):
            vectors.extend(embedder.embed([p.text for p in pieces[start : start + EMBED_BATCH]]).vectors)
    except Exception as exc:
        logger.exception("ingestion of document %s failed", document_id)
        _fail(tenant_id, document, exc)
        raise
    return _store(tenant_id, document, pieces, vectors, embedder.id)


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
    tenant_id: int, document: Document, pieces: list[TextChunk], vectors: list, embedder_id: str
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
        current.status, current.ingested_hash = Document.Status.READY, current.content_hash
        current.chunk_count, current.error = len(pieces), ""
        current.save(update_fields=["status", "ingested_hash", "chunk_count", "error", "updated_at"])
    return current
