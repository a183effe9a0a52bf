"""Labelled question pairs and the verifier models trained from them.

Both are global, operator-curated data: a verifier learns what "the same
question" means in general, not a tenant's questions.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class LabelledPair(models.Model):
    """Two questions an operator marked as the same question (label 1) or not (0)."""

    text_a = models.TextField(max_length=2000)
    text_b = models.TextField(max_length=2000)
    same = models.BooleanField(help_text="Checked: both ask the same question; a cache hit between them is right.")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{'=' if self.same else '≠'} {self.text_a[:40]} | {self.text_b[:40]}"


class VerifierModel(models.Model):
    """A trained verifier (pickled ``TrainedVerifier``); at most one is active."""

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
            models.UniqueConstraint(fields=["active"], condition=models.Q(active=True), name="verifiermodel_one_active")
        ]

    def __str__(self) -> str:
        return f"verifier #{self.pk} ({self.embedder_id}, {self.created_at:%Y-%m-%d %H:%M})"
