"""Router few-shot examples and the route table, global or per tenant."""

import hashlib

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from ai.router.decisions import CacheStrategy, Complexity, Intent
from catalog.selectors import model_names
from tenants.audit import AuditedHistory, TenantOrGlobalAuditRecord
from tenants.scoping import TenantOrGlobalModel


def text_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


class RouterExample(TenantOrGlobalModel):
    """A labelled query the local router votes with (and the LLM router shows as a few-shot)."""

    text = models.TextField(max_length=2000)
    intent = models.CharField(max_length=16, choices=[(i.value, i.value) for i in Intent])
    complexity = models.CharField(max_length=8, choices=[(c.value, c.value) for c in Complexity])
    cache_strategy = models.CharField(
        max_length=16, choices=[(c.value, c.value) for c in CacheStrategy], default=CacheStrategy.STANDARD
    )
    note = models.CharField(max_length=300, blank=True)
    # Set for an example bootstrapped from one of the tenant's documents (ai/router/bootstrap.py):
    # replaced when the document is ingested again, deleted with it.
    document = models.ForeignKey(
        "ai.Document", null=True, blank=True, on_delete=models.CASCADE, related_name="+", editable=False
    )
    # The embedding of `text` by `embedder_id`; recomputed when either changes.
    text_hash = models.CharField(max_length=64, editable=False)
    embedding = VectorField(null=True, blank=True, editable=False)
    embedder_id = models.CharField(max_length=120, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "intent"], name="routerexample_tenant_intent")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "text_hash"], name="routerexample_tenant_text_uniq"),
            models.UniqueConstraint(
                fields=["text_hash"], condition=models.Q(tenant__isnull=True), name="routerexample_global_text_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.intent}/{self.complexity}] {self.text[:60]}"


class RouteRule(TenantOrGlobalModel):
    """(intent, complexity) -> model and ordered fallbacks. A tenant's rule overrides the global one."""

    intent = models.CharField(max_length=16, choices=[(i.value, i.value) for i in Intent])
    complexity = models.CharField(max_length=8, choices=[(c.value, c.value) for c in Complexity])
    model = models.CharField(max_length=100)
    fallbacks = models.JSONField(default=list, blank=True, help_text="Ordered model names tried after `model`.")
    updated_at = models.DateTimeField(auto_now=True)

    history = AuditedHistory(
        base=TenantOrGlobalAuditRecord, excluded_fields=["updated_at"], verbose_name="route change"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "intent", "complexity"], name="routerule_tenant_cell_uniq"),
            models.UniqueConstraint(
                fields=["intent", "complexity"],
                condition=models.Q(tenant__isnull=True),
                name="routerule_global_cell_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.intent}/{self.complexity} -> {self.model}"

    def clean(self) -> None:
        known = model_names()
        if not isinstance(self.fallbacks, list) or not all(isinstance(m, str) for m in self.fallbacks):
            raise ValidationError({"fallbacks": "A list of model names."})
        unknown = [m for m in [self.model, *self.fallbacks] if m not in known]
        if unknown:
            raise ValidationError(f"Not in the model catalog: {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
