"""Router few-shot examples (with "try a query" and JSON-lines import/export) and route rules."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ai.embeddings import get_embedder
from ai.router.examples import router_example_save
from ai.router.io import as_json_lines, example_rows, parse_lines, router_examples_import
from ai.router.models import RouterExample, RouteRule
from ai.router.service import route_query
from ai.tenant_settings.selectors import settings_for
from tenants.access import request_tenants_managed
from tenants.admin import TenantAuditTrailAdmin, TenantOwnedAdmin
from tenants.audit_admin import AuditedAdmin
from tenants.models import Tenant


def _tenant_field(request: HttpRequest, *, required: bool) -> forms.ModelChoiceField:
    """The tenants the user manages. A posted tenant outside them does not exist for the
    user: 404, as on every other surface (tenants/access.py), not a form error."""
    managed = request_tenants_managed(request)
    posted = request.POST.get("tenant")
    if posted and not managed.every and posted not in {str(pk) for pk in managed.ids}:
        raise Http404("No such tenant.")
    return forms.ModelChoiceField(
        managed.tenants(),
        required=required or not managed.every,
        empty_label="(global examples)" if not required and managed.every else None,
    )


class TryQueryForm(forms.Form):
    query = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON lines: {text, intent, complexity, cache_strategy, note} per line.")


def preview_decision(tenant: Tenant, query: str) -> dict:
    """The router's decision for a query as the API would make it, without calling any LLM."""
    settings = settings_for(tenant)
    embedder = get_embedder()
    vector = embedder.embed([query]).vectors[0]
    decision = route_query(
        tenant=tenant, query=query, vector=vector, embedder_id=embedder.id, settings=settings, preview=True
    )
    return {
        "decision": decision,
        "threshold": settings.semantic_threshold(decision),
        "cache_enabled": settings.cache_enabled,
        "router_mode": settings.get_router_mode_display(),
        "asks_llm": settings.router_mode != settings.RouterMode.LOCAL,
    }


class OriginFilter(admin.SimpleListFilter):
    title = "origin"
    parameter_name = "origin"

    def lookups(self, request, model_admin):
        return [("document", "From a document"), ("written", "Written")]

    def queryset(self, request, queryset):
        if self.value() == "document":
            return queryset.filter(document__isnull=False)
        if self.value() == "written":
            return queryset.filter(document__isnull=True)
        return queryset


@admin.register(RouterExample)
class RouterExampleAdmin(TenantOwnedAdmin):
    list_display = ["text", "intent", "complexity", "cache_strategy", "tenant", "origin", "embedder_id"]
    list_filter = ["intent", "complexity", "cache_strategy", OriginFilter, "tenant"]
    search_fields = ["text", "note"]
    fields = ["tenant", "text", "intent", "complexity", "cache_strategy", "note", "document"]
    readonly_fields = ["document"]

    @admin.display(description="origin")
    def origin(self, obj: RouterExample) -> str:
        """Bootstrapped from a document (replaced when it is ingested again, deleted with it) or written."""
        return f"document: {obj.document}" if obj.document_id else "written"

    actions = ["export_jsonl"]
    change_list_template = "admin/ai/routerexample/change_list.html"

    def save_model(self, request, obj, form, change):
        router_example_save(example=obj)  # embeds the text when it changed

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("try/", view(self.try_view), name="ai_routerexample_try"),
            path("import/", view(self.import_view), name="ai_routerexample_import"),
            *super().get_urls(),
        ]

    def try_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form_class = type("TryForm", (TryQueryForm,), {"tenant": _tenant_field(request, required=True)})
        form = form_class(request.POST or None)
        result = None
        if request.method == "POST" and form.is_valid():
            result = preview_decision(form.cleaned_data["tenant"], form.cleaned_data["query"])
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "result": result, "title": "Try a query"}  # fmt: skip
        return TemplateResponse(request, "admin/ai/routerexample/try.html", context)

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form_class = type("ImportForm", (ImportForm,), {"tenant": _tenant_field(request, required=False)})
        form = form_class(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            tenant = form.cleaned_data["tenant"]
            try:
                text = form.cleaned_data["file"].read().decode("utf-8")
                created, updated = router_examples_import(rows=parse_lines(text.splitlines()), tenant=tenant)
            except UnicodeDecodeError:
                form.add_error("file", "The file is not UTF-8 text.")
            except ValidationError as exc:
                form.add_error("file", "; ".join(exc.messages))
            else:
                where = f"tenant {tenant.slug}" if tenant else "global"
                messages.success(request, f"{created} created, {updated} updated ({where}).")
                return redirect(reverse("admin:ai_routerexample_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Import router examples"}  # fmt: skip
        return TemplateResponse(request, "admin/ai/routerexample/import.html", context)

    @admin.action(description="Export the selected examples as JSON lines")
    def export_jsonl(self, request, queryset):
        response = HttpResponse(as_json_lines(example_rows(queryset)), content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="router-examples.jsonl"'
        return response


@admin.register(RouteRule)
class RouteRuleAdmin(AuditedAdmin, TenantOwnedAdmin):
    list_display = ["intent", "complexity", "model", "fallbacks", "tenant"]
    list_filter = ["intent", "complexity", "tenant"]


admin.site.register(RouteRule.history.model, TenantAuditTrailAdmin)
