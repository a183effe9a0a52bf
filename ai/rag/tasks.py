"""Background tasks (Django's task API; the worker is `python manage.py db_worker`)."""

from django_tasks import task

from ai.rag.ingestion import document_ingest


@task()
def ingest_document(*, tenant_id: int, document_id: int, force: bool = False) -> int:
    document = document_ingest(tenant_id=tenant_id, document_id=document_id, force=force)
    return document.chunk_count if document else 0
