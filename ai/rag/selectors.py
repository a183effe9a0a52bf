from ai.rag.models import Document
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def document_list(*, tenant: Tenant, limit: int = 100, offset: int = 0) -> tuple[int, list[Document]]:
    with tenant_scope(tenant):
        documents = Document.objects.for_tenant(tenant).order_by("-updated_at", "-id")
        return documents.count(), list(documents.defer("content")[offset : offset + limit])


def document_get(*, tenant: Tenant, document_id: int) -> Document:
    """Raises Document.DoesNotExist for another tenant's document (it does not exist for this one)."""
    with tenant_scope(tenant):
        return Document.objects.for_tenant(tenant).get(pk=document_id)


def document_title_taken(*, tenant: Tenant, title: str, exclude_id: int | None = None) -> bool:
    """Whether another of the tenant's documents has this title (titles are unique per tenant)."""
    with tenant_scope(tenant):
        return Document.objects.for_tenant(tenant).filter(title=title).exclude(pk=exclude_id).exists()
