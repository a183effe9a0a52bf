from django.contrib import admin, messages

from ai.rag.ingest import document_ingest
from ai.rag.models import Document
from tenants.admin import TenantOwnedAdmin


@admin.register(Document)
class DocumentAdmin(TenantOwnedAdmin):
    list_display = ["title", "tenant", "status", "chunk_count", "updated_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["title"]
    readonly_fields = ["status", "error", "chunk_count", "created_at", "updated_at"]
    fields = ["tenant", "title", "source", "content", *readonly_fields]
    actions = ["reingest"]

    @admin.action(description="Re-ingest the selected documents now")
    def reingest(self, request, queryset):
        count = 0
        for document in queryset:
            document_ingest(tenant_id=document.tenant_id, document_id=document.pk)
            count += 1
        messages.success(request, f"Re-ingested {count} document(s).")
