"""The one writer of tenant AI settings: validated, audited."""

from django.db import transaction
from django.utils import timezone

from ai.tenant_settings.models import AUDITED_FIELDS, TenantAISettings, TenantSettingsChange
from tenants.scoping import tenant_scope


def tenant_settings_save(*, settings: TenantAISettings, user) -> list[TenantSettingsChange]:
    """Validate and save a tenant's settings, recording every changed field.

    Every worker's ``settings_for`` sees the change within ``AI["ROW_CACHE_SECONDS"]``.
    """
    with tenant_scope(settings.tenant_id), transaction.atomic():
        settings.full_clean()  # its unique check reads the tenant's row: inside its scope
        before = TenantAISettings.objects.for_tenant(settings.tenant_id).filter(pk=settings.pk).first()
        defaults = TenantAISettings(tenant_id=settings.tenant_id)
        previous = before or defaults
        changes = [
            TenantSettingsChange(
                tenant_id=settings.tenant_id,
                user=user,
                field=name,
                old_value=str(getattr(previous, name)),
                new_value=str(getattr(settings, name)),
            )
            for name in AUDITED_FIELDS
            if getattr(previous, name) != getattr(settings, name)
        ]
        settings.updated_at = timezone.now()
        settings.save()
        TenantSettingsChange.objects.bulk_create(changes)
    return changes
