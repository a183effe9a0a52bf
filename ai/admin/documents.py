"""Documents in the operator console. Every write goes through the services of
``ai.rag.services``, so an edit here retires the old chunks, queues ingestion and
invalidates the tenant's cache exactly as the API does."""

from django import forms
from django.contrib import admin, messages

from ai.rag.models import Document
from ai.rag.selectors import document_title_taken
from ai.rag.services import document_create, document_delete, document_reingest, document_update
from tenants.admin import TenantOwnedAdmin

EDITABLE = ("title", "source", "content")
QUEUED = "queued for ingestion; until it is ready it is left out of answers (its status shows in the list)"


class DocumentForm(forms.ModelForm):
    class Meta:
        model = Document
        fields = ["tenant", *EDITABLE]

    def clean(self):
        data = super().clean()
        tenant = self.instance.tenant if self.instance.pk else data.get("tenant")
        title = data.get("title")
        if tenant and title and document_title_taken(tenant=tenant, title=title, exclude_id=self.instance.pk):
            self.add_error("title", f"{tenant} already has a document titled {title!r}.")
        return data


@admin.register(Document)
class DocumentAdmin(TenantOwnedAdmin):
    form = DocumentForm
    list_display = ["title", "tenant", "status", "error", "chunk_count", "updated_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["title"]
    readonly_fields = ["status", "error", "chunk_count", "created_at", "updated_at"]
    fields = ["tenant", *EDITABLE, *readonly_fields]
    actions = ["reingest"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", *self.readonly_fields] if obj else self.readonly_fields  # a document never moves

    def save_model(self, request, obj: Document, form, change: bool) -> None:
        if not change:
            document = document_create(tenant=obj.tenant, title=obj.title, content=obj.content, source=obj.source)
            obj.pk, obj._state.adding = document.pk, False
            messages.info(request, f"“{document}” is {QUEUED}.")
            return
        fields = {name: getattr(obj, name) for name in EDITABLE if name in form.changed_data}
        document = document_update(tenant=obj.tenant, document_id=obj.pk, **fields)
        if document.content_hash != obj.content_hash:
            messages.info(request, f"The text of “{document}” changed: it is {QUEUED}.")

    def delete_model(self, request, obj: Document) -> None:
        document_delete(tenant=obj.tenant, document_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for document in queryset.select_related("tenant"):
            document_delete(tenant=document.tenant, document_id=document.pk)

    @admin.action(description="Re-ingest the selected documents (chunk and embed again)", permissions=["change"])
    def reingest(self, request, queryset) -> None:
        documents = [document_reingest(tenant=d.tenant, document_id=d.pk) for d in queryset.select_related("tenant")]
        messages.info(request, f"{len(documents)} document(s) {QUEUED}.")
