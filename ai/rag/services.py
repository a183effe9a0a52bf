"""Document writes: the only writers of documents (ingestion: ``ai.rag.ingestion``).
documents and chunks.

Guarantees:
- A document is never answered from text it no longer has. The write that
  changes a document's title or content deletes its chunks in the same
  transaction, and retrieval returns only chunks of documents whose ingested
  hash is their current content hash (``ai.rag.retrieval``). Until its new
  text is ingested the document is absent from answers, never stale.
- The tenant's cache is invalidated after every commit that changes what
  retrieval can return: the write itself, a finished ingestion and a failed
  one (``ai.signals``), so answers given while a document was missing are
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

from django.db import transaction

from ai.rag.models import Chunk, Document, content_hash
from ai.rag.tasks import ingest_document
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _enqueue(document: Document, *, force: bool = False) -> None:
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
