"""Tenants, their members and their API keys."""

import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

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
    """An API key: only its prefix and hash are stored; the key is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, validators=[_prefix_validator], editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

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

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
