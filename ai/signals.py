"""What moves a tenant's cache generation, once the transaction commits, durably
(ai/cache/invalidation.py); a rollback moves nothing.

- Its documents or answer-changing settings changed: no earlier answer is served.
- Its API keys changed (revoked, expiry moved, deleted) or the tenant was
  deactivated: the Redis records of its keys (tenants/key_cache.py) stop counting,
  so every process asks PostgreSQL again within a second.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from ai.cache.invalidation import invalidation_record
from ai.rag.models import Document
from ai.tenant_settings.models import TenantAISettings
from tenants import key_cache
from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope


def _on_change(sender, instance, using: str, **kwargs) -> None:
    invalidation_record(tenant_id=instance.tenant_id, using=using)


def _on_key_change(sender, instance: ApiKey, using: str, created: bool = False, **kwargs) -> None:
    if created:
        return  # a new key was never cached; the tenant's answers stay
    invalidation_record(tenant_id=instance.tenant_id, using=using)
    # This process stops trusting the tenant's keys at once; the others within KEY_LOCAL_SECONDS.
    transaction.on_commit(lambda: key_cache.forget_tenant(instance.tenant_id), using=using)


def _on_tenant_saved(sender, instance: Tenant, created: bool, using: str, **kwargs) -> None:
    if not created and not instance.active:
        with tenant_scope(instance.pk, using=using):
            invalidation_record(tenant_id=instance.pk, using=using)
        transaction.on_commit(lambda: key_cache.forget_tenant(instance.pk), using=using)


def connect() -> None:
    for model in (Document, TenantAISettings):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"invalidate-on-save-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"invalidate-on-delete-{model.__name__}")
    post_save.connect(_on_key_change, sender=ApiKey, dispatch_uid="invalidate-on-save-ApiKey")
    post_delete.connect(_on_key_change, sender=ApiKey, dispatch_uid="invalidate-on-delete-ApiKey")
    post_save.connect(_on_tenant_saved, sender=Tenant, dispatch_uid="invalidate-on-tenant-deactivated")
