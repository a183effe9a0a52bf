"""Each tenant's AI settings (cache, thresholds, router mode; defaults when unset) and
their audit trail. Reads: ``selectors``; the one writer: ``services``."""

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from ai.router.decisions import CacheStrategy
from tenants.scoping import TenantOwnedModel


class TenantAISettings(TenantOwnedModel):
    class CacheScope(models.TextChoices):
        TENANT = "tenant", "Whole tenant"
        USER = "user", "Tenant + end user"

    class RouterMode(models.TextChoices):
        LOCAL = "local", "Local (few-shot nearest examples)"
        LLM = "llm", "LLM (structured output)"
        CASCADE = "cascade", "Local, then LLM when unsure"

    cache_enabled = models.BooleanField(default=True)
    cache_ttl_seconds = models.PositiveIntegerField(default=86400)
    cache_scope = models.CharField(max_length=8, choices=CacheScope.choices, default=CacheScope.TENANT)
    threshold_standard = models.FloatField(default=0.90, help_text="Cosine similarity for a semantic hit.")
    threshold_strict = models.FloatField(default=0.95, help_text="Used when router confidence is under the floor.")
    confidence_floor = models.FloatField(default=0.80)
    router_mode = models.CharField(max_length=8, choices=RouterMode.choices, default=RouterMode.LOCAL)
    router_llm_model = models.CharField(max_length=100, default="gpt-4o-mini")
    cascade_threshold = models.FloatField(
        default=0.60, help_text="Cascade mode asks the LLM router when local confidence is under this."
    )
    local_fallback = models.BooleanField(
        default=True, help_text="End every model chain with the local extractive answerer."
    )
    chunk_tokens = models.PositiveIntegerField(default=200, help_text="Chunk size in tokens.")
    chunk_overlap = models.PositiveIntegerField(default=40, help_text="Tokens shared by consecutive chunks.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "tenant AI settings"
        verbose_name_plural = "tenant AI settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="tenantaisettings_tenant_uniq")]

    def __str__(self) -> str:
        return f"AI settings of tenant {self.tenant_id}"

    def clean(self) -> None:
        if not 0 < self.threshold_standard <= self.threshold_strict <= 1:
            raise ValidationError("Thresholds must satisfy 0 < standard <= strict <= 1.")
        if not 20 <= self.chunk_tokens <= 1000 or self.chunk_overlap >= self.chunk_tokens:
            raise ValidationError("Chunks need 20..1000 tokens and an overlap smaller than the chunk.")
        for name in ("confidence_floor", "cascade_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValidationError({name: "Between 0 and 1."})

    def threshold_for(self, confidence: float) -> float:
        """An unsure router gets the stricter threshold."""
        return self.threshold_strict if confidence < self.confidence_floor else self.threshold_standard

    def semantic_threshold(self, decision) -> float | None:
        """The similarity a semantic hit needs after this routing decision; None: the cache is not used."""
        if not self.cache_enabled or decision.cache_strategy == CacheStrategy.BYPASS:
            return None
        return self.threshold_for(decision.confidence)


class TenantSettingsChange(TenantOwnedModel):
    """One field of a tenant's AI settings changed: who, when, from which value to which."""

    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    field = models.CharField(max_length=64)
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-changed_at"], name="settingschange_tenant_at")]

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value} -> {self.new_value}"


AUDITED_FIELDS = [
    f.name for f in TenantAISettings._meta.concrete_fields if f.name not in ("id", "tenant", "updated_at")
]
