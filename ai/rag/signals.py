"""A tenant's documents or answer-changing settings changed: invalidate its cache
once the transaction commits, durably (ai/cache/invalidation.py); a rollback leaves
the cache alone."""

from django.db.models.signals import post_delete, post_save

from ai.cache.invalidation import invalidation_record
from ai.rag.models import Document
from ai.tenant_settings.models import TenantAISettings


def _on_change(sender, instance, using: str, **kwargs) -> None:
    invalidation_record(tenant_id=instance.tenant_id, using=using)


def connect() -> None:
    for model in (Document, TenantAISettings):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"invalidate-on-save-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"invalidate-on-delete-{model.__name__}")
