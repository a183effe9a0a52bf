"""Tenants, their members and their API keys."""

import hashlib
import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from tenants.audit import AuditedHistory, TenantAuditRecord
from tenants.scoping import TenantOwnedModel


class Tenant(models.Model):
    """A customer company. Not tenant-owned itself: it is the tenant."""

    class Plan(models.TextChoices):
        FREE = "free", "Free"
        PRO = "pro", "Pro"
        ENTERPRISE = "enterprise", "Enterprise"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    plan = models.CharField(max_length=32, choices=Plan.choices, default=Plan.FREE)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(TenantOwnedModel):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_tenant_user_uniq")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant_id} ({self.role})"


KEY_SCHEME = "sc"
PREFIX_LENGTH = 8
_prefix_validator = RegexValidator(r"^[A-Za-z0-9_-]+$")


def hash_key(key: str) -> str:
    """SHA-256 of the whole key: keys are 256-bit random, so no slow KDF is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(tenant_id: int) -> tuple[str, str]:
    """A fresh key ``sc_<tenant id>_<random>`` and its display prefix.

    The tenant id in the key lets authentication open the tenant's scope before
    it looks the key up, so the lookup itself runs under Row-Level Security.
    """
    secret = secrets.token_urlsafe(32)
    return f"{KEY_SCHEME}_{tenant_id}_{secret}", secret[:PREFIX_LENGTH]


class ApiKey(TenantOwnedModel):
    """An API key: only its prefix and hash are stored; the key is shown once.

    Its own limits (all optional: empty is "only the tenant's") sit inside the tenant's; they are
    set through ``billing.key_limits.api_key_limits_set``, which checks that, and enforced on the
    request path by ``billing.key_admission`` (docs/architecture.md, "Keys and their limits").
    """

    class BudgetPeriod(models.TextChoices):
        MONTHLY = "monthly", "Monthly (UTC calendar month)"
        DAILY = "daily", "Daily (UTC day)"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, validators=[_prefix_validator], editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The key's own limits (None or empty: none of its own; the tenant's still apply).
    allowed_models = models.JSONField(default=list, blank=True, help_text="Model names; empty: the tenant's.")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)
    budget_usd = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTHLY)
    soft_alert_ratio = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.800"))
    cache_controls = models.JSONField(
        null=True, blank=True, help_text="Cache controls the key may send (no-cache, no-store, ttl, s-maxage, "
        "namespace); null: all of them."
    )  # fmt: skip
    metadata = models.JSONField(default=dict, blank=True)

    # Its audit trail (tenants/audit.py): never the secret's traces, nor the per-request stamp.
    history = AuditedHistory(
        base=TenantAuditRecord, excluded_fields=["prefix", "hashed_key", "last_used_at"], verbose_name="API key change"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "prefix"], name="apikey_tenant_prefix_uniq")]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        return f"{KEY_SCHEME}_{self.tenant_id}_{self.prefix}…"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def clean(self) -> None:
        """What a key's limits are on their own (that they sit inside the tenant's: billing.key_limits)."""
        if not isinstance(self.allowed_models, list) or not all(isinstance(m, str) for m in self.allowed_models):
            raise ValidationError({"allowed_models": "A list of model names."})
        if self.cache_controls is not None and not set(self.cache_controls or []) <= set(CACHE_CONTROLS):
            raise ValidationError({"cache_controls": f"Null (all), or a list of: {', '.join(CACHE_CONTROLS)}."})
        if not isinstance(self.metadata, dict):
            raise ValidationError({"metadata": "A JSON object."})
        if not 0 < self.soft_alert_ratio <= 1:
            raise ValidationError({"soft_alert_ratio": "Over 0 and at most 1."})

    def limits_record(self) -> dict:
        """The key's limits as JSON values (its Redis record carries them: no SQL on a hit)."""
        values = {name: getattr(self, name) for name in LIMIT_FIELDS}
        values["budget_usd"] = None if self.budget_usd is None else str(self.budget_usd)
        values["soft_alert_ratio"] = str(self.soft_alert_ratio)
        return values

    def with_limits(self, values: dict) -> "ApiKey":
        for name in LIMIT_FIELDS:
            if name in values:
                setattr(self, name, values[name])
        self.budget_usd = None if self.budget_usd is None else Decimal(self.budget_usd)
        self.soft_alert_ratio = Decimal(self.soft_alert_ratio)
        return self

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


# The per-request cache controls a key may be given (LiteLLM's names; ai/api/openai_input.py).
CACHE_CONTROLS = ("no-cache", "no-store", "ttl", "s-maxage", "namespace")

LIMIT_FIELDS = (
    "allowed_models", "requests_per_minute", "tokens_per_minute", "max_parallel_requests", "budget_usd",
    "budget_period", "soft_alert_ratio", "cache_controls", "metadata",
)  # fmt: skip
