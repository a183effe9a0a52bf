"""Labelled question pairs and the verifier models trained from them, global or per tenant.

A global pair (``tenant`` NULL) is operator-curated public data; a tenant's pair
comes from its own feedback on cached answers (``POST /api/v1/ai/feedback``) and
teaches only that tenant's verifier. A verifier serves the tenant it was trained
for; a global one serves every tenant without its own; with neither, the shipped
default (ai/verifier/default/) serves.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOrGlobalModel


class LabelledPair(TenantOrGlobalModel):
    """Two questions marked as the same question (label 1) or not (0)."""

    class Source(models.TextChoices):
        OPERATOR = "operator", "Operator"
        FEEDBACK = "feedback", "Tenant feedback"

    text_a = models.TextField(max_length=2000, help_text="The question asked.")
    text_b = models.TextField(max_length=2000, help_text="The cached question that answered it.")
    same = models.BooleanField(help_text="Checked: both ask the same question; a cache hit between them is right.")
    note = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.OPERATOR, editable=False)
    request_id = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="labelledpair_tenant_created")]
        constraints = [  # one rating per request: a second one (good, then bad) replaces it
            models.UniqueConstraint(
                fields=["tenant", "request_id"],
                condition=models.Q(source="feedback") & ~models.Q(request_id=""),
                name="labelledpair_feedback_request_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{'=' if self.same else '≠'} {self.text_a[:40]} | {self.text_b[:40]}"


class VerifierModel(TenantOrGlobalModel):
    """A trained verifier (pickled ``TrainedVerifier``); at most one active per tenant and one global."""

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    embedder_id = models.CharField(max_length=120, editable=False)
    blob = models.BinaryField(editable=False)
    min_score = models.FloatField(help_text="A borderline hit needs at least this verifier score.")
    verify_below = models.FloatField(
        default=0.97, help_text="Hits at or above this cosine similarity are not sent to the verifier."
    )
    active = models.BooleanField(default=False)
    report = models.JSONField(default=dict, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(active=True, tenant__isnull=False),
                name="verifiermodel_one_active_per_tenant",
            ),
            models.UniqueConstraint(
                fields=["active"],
                condition=models.Q(active=True, tenant__isnull=True),
                name="verifiermodel_one_active_global",
            ),
        ]

    def __str__(self) -> str:
        whose = f"tenant {self.tenant_id}" if self.tenant_id else "global"
        return f"verifier #{self.pk} ({whose}, {self.embedder_id}, {self.created_at:%Y-%m-%d %H:%M})"
