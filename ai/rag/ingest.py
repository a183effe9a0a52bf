"""Document writes and ingestion (chunk, embed, store).

Ingestion is a background task (``ai.rag.tasks``), enqueued after the
document's transaction commits. Re-ingesting unchanged content does nothing.
The embeddings are computed outside any transaction.
"""

import logging

from django.db import transaction

from ai.embeddings import get_embedder
from ai.rag.chunking import chunk_text
from ai.rag.models import Chunk, Document, content_hash
from ai.tenant_settings import settings_for
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.rag")
EMBED_BATCH = 32
# Rows per INSERT: each statement (with its HNSW index updates) stays well within the statement timeout.
CHUNK_INSERT_BATCH = 250


def _enqueue(document: Document) -> None:
    from ai.rag.tasks import ingest_document

    tenant_id, document_id = document.tenant_id, document.pk
    transaction.on_commit(lambda: ingest_document.enqueue(tenant_id=tenant_id, document_id=document_id))


def document_create(*, tenant: Tenant, title: str, content: str, source: str = "") -> Document:
    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).create(
            tenant=tenant, title=title, content=content, source=source, content_hash=content_hash(title, content)
        )
        _enqueue(document)
    return document


def document_update(*, tenant: Tenant, document_id: int, **fields) -> Document:
    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).select_for_update().get(pk=document_id)
        for name, value in fields.items():
            setattr(document, name, value)
        new_hash = content_hash(document.title, document.content)
        if new_hash != document.content_hash:
            document.content_hash, document.status = new_hash, Document.Status.PENDING
            _enqueue(document)
        document.save()
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


def document_ingest(*, tenant_id: int, document_id: int) -> Document | None:
    """Chunk and embed a document; a no-op when its content is already ingested."""
    with tenant_scope(tenant_id):
        document = Document.objects.for_tenant(tenant_id).select_related("tenant").filter(pk=document_id).first()
        if document is None:
            return None
        if document.ingested_hash == document.content_hash and document.status == Document.Status.READY:
            return document
        Document.objects.for_tenant(tenant_id).filter(pk=document_id).update(status=Document.Status.PROCESSING)
    settings = settings_for(document.tenant)
    text = f"{document.title}\n\n{document.content}"
    try:
        pieces = chunk_text(text, size=settings.chunk_tokens, overlap=settings.chunk_overlap)
        embedder = get_embedder()
        vectors = []
        for start in range(0, len(pieces), EMBED_BATCH):
            vectors.extend(embedder.embed([p.text for p in pieces[start : start + EMBED_BATCH]]).vectors)
    except Exception as exc:
        logger.exception("ingestion of document %s failed", document_id)
        with tenant_scope(tenant_id):
            Document.objects.for_tenant(tenant_id).filter(pk=document_id).update(
                status=Document.Status.FAILED, error=str(exc)[:500]
            )
        raise
    with tenant_scope(tenant_id):
        current = Document.objects.for_tenant(tenant_id).select_for_update().filter(pk=document_id).first()
        if current is None or current.content_hash != document.content_hash:
            return current  # deleted or changed meanwhile: the newer task ingests it
        Chunk.objects.for_tenant(tenant_id).filter(document_id=document_id).delete()
        Chunk.objects.for_tenant(tenant_id).bulk_create(
            [
                Chunk(
                    tenant_id=tenant_id,
                    document_id=document_id,
                    position=p.position,
                    text=p.text,
                    token_count=p.token_count,
                    embedding=v,
                    embedder_id=embedder.id,
                )
                for p, v in zip(pieces, vectors, strict=True)
            ],
            batch_size=CHUNK_INSERT_BATCH,
        )
        current.status, current.ingested_hash = Document.Status.READY, current.content_hash
        current.chunk_count, current.error = len(pieces), ""
        current.save(update_fields=["status", "ingested_hash", "chunk_count", "error", "updated_at"])
    return current
