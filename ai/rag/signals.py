"""A tenant's documents or answer-changing settings changed: invalidate its cache
once the transaction commits (a rollback leaves the cache alone)."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from ai.rag.models import Document
from ai.tenant_settings import TenantAISettings


def cache_invalidate(tenant_id: int) -> None:
    from ai.cache import get_cache

    get_cache().invalidate(tenant_id)


def _on_change(sender, instance, **kwargs) -> None:
    tenant_id = instance.tenant_id
    transaction.on_commit(lambda: cache_invalidate(tenant_id))


def connect() -> None:
    for model in (Document, TenantAISettings):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"invalidate-on-save-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"invalidate-on-delete-{model.__name__}")
